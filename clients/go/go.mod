module runway

go 1.19
