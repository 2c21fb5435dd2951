module gcbench

go 1.19

require runway v0.0.0

// The binding from this tree: nothing is downloaded.
replace runway => ../../../clients/go
