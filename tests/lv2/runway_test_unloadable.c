/*
 * The library of urn:runway:test:unloadable: it needs a function that no
 * library defines, so loading it (RTLD_NOW, as lilv does) fails with the
 * dynamic linker's "undefined symbol" message, which runway must report.
 */
#include <stdint.h>

#include <lv2/core/lv2.h>

extern void runway_test_symbol_nobody_defines(void);

LV2_SYMBOL_EXPORT const LV2_Descriptor *lv2_descriptor(uint32_t index) {
  (void)index;
  runway_test_symbol_nobody_defines();
  return 0;
}
