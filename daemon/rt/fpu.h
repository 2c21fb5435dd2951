/*
 * Flush-to-zero / denormals-are-zero for the duration of an RT cycle, so a
 * denormal never costs the callback a hundred cycles per sample. The previous
 * mode is restored on the way out, as the audio server's thread may expect it.
 * RT safe.
 */
#ifndef RUNWAY_DAEMON_FPU_H
#define RUNWAY_DAEMON_FPU_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

struct fpu_state {
  uint64_t saved;
};

static inline struct fpu_state fpu_enter_ftz(void) {
  struct fpu_state st = {0};
#if defined(__x86_64__) || defined(__i386__)
  unsigned int csr = _mm_getcsr();
  st.saved = csr;
  _mm_setcsr(csr | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
#elif defined(__aarch64__)
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  st.saved = fpcr;
  __asm__ volatile("msr fpcr, %0" ::"r"(fpcr | (UINT64_C(1) << 24)));
#endif
  return st;
}

static inline void fpu_leave(struct fpu_state st) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr((unsigned int)st.saved);
#elif defined(__aarch64__)
  __asm__ volatile("msr fpcr, %0" ::"r"(st.saved));
#else
  (void)st;
#endif
}

static inline int fpu_ftz_active(void) {
#if defined(__x86_64__) || defined(__i386__)
  return (_mm_getcsr() & 0x8040u) == 0x8040u;
#elif defined(__aarch64__)
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  return (fpcr >> 24) & 1;
#else
  return 0;
#endif
}

#endif
