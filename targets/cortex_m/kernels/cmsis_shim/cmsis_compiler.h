/*
 * Minimal stand-in for CMSIS-Core's cmsis_compiler.h, enough for the
 * CMSIS-DSP headers and kernels used as yardsticks here.
 *
 * CMSIS-Core is not in any registry this project can reach, and the
 * cmsisdsp sdist does not include it.  The definitions follow CMSIS-Core's
 * GCC/Clang versions; the saturation and bit intrinsics use the ACLE
 * (arm_acle.h), which both arm-none-eabi-gcc and clang provide and which
 * compile to the same single instructions (SSAT, USAT, CLZ, ROR, ...).
 */
#ifndef TVMSE_CMSIS_COMPILER_SHIM_H
#define TVMSE_CMSIS_COMPILER_SHIM_H

#include <arm_acle.h>
#include <stdint.h>

#ifndef __ASM
#define __ASM __asm
#endif
#ifndef __INLINE
#define __INLINE inline
#endif
#ifndef __STATIC_INLINE
#define __STATIC_INLINE static inline
#endif
#ifndef __STATIC_FORCEINLINE
#define __STATIC_FORCEINLINE __attribute__((always_inline)) static inline
#endif
#ifndef __ALIGNED
#define __ALIGNED(x) __attribute__((aligned(x)))
#endif
#ifndef __PACKED
#define __PACKED __attribute__((packed, aligned(1)))
#endif
#ifndef __WEAK
#define __WEAK __attribute__((weak))
#endif
#ifndef __RESTRICT
#define __RESTRICT __restrict
#endif
#ifndef __NO_RETURN
#define __NO_RETURN __attribute__((__noreturn__))
#endif
#ifndef __USED
#define __USED __attribute__((used))
#endif

#define __SSAT(value, bits) __ssat((value), (bits))
#define __USAT(value, bits) __usat((value), (bits))
#define __ROR(value, shift) __ror((value), (shift))
#define __CLZ(value) ((uint8_t)((value) == 0U ? 32U : (uint32_t)__builtin_clz(value)))

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define __SXTB16(x) __sxtb16(x)
#define __SMLAD(x, y, acc) __smlad((x), (y), (acc))
#define __SMLADX(x, y, acc) __smladx((x), (y), (acc))
#define __SMLALD(x, y, acc) __smlald((x), (y), (acc))
#define __SMLALDX(x, y, acc) __smlaldx((x), (y), (acc))
#define __SMUAD(x, y) __smuad((x), (y))
#define __SMUADX(x, y) __smuadx((x), (y))
#define __SMUSD(x, y) __smusd((x), (y))
#define __SMUSDX(x, y) __smusdx((x), (y))
#define __SMLSDX(x, y, acc) __smlsdx((x), (y), (acc))
#define __QADD(x, y) __qadd((x), (y))
#define __QSUB(x, y) __qsub((x), (y))
#define __QADD8(x, y) __qadd8((x), (y))
#define __QSUB8(x, y) __qsub8((x), (y))
#define __QADD16(x, y) __qadd16((x), (y))
#define __QSUB16(x, y) __qsub16((x), (y))
#define __QASX(x, y) __qasx((x), (y))
#define __QSAX(x, y) __qsax((x), (y))
#define __SHADD16(x, y) __shadd16((x), (y))
#define __SHSUB16(x, y) __shsub16((x), (y))
#define __SHASX(x, y) __shasx((x), (y))
#define __SHSAX(x, y) __shsax((x), (y))
#define __SMMLA(x, y, acc) ((int32_t)((((int64_t)(x) * (y)) + ((int64_t)(acc) << 32)) >> 32))
#endif

#endif /* TVMSE_CMSIS_COMPILER_SHIM_H */
