#pragma once
// Eigen, included once for the whole project. GCC 12 reports -Wmaybe-uninitialized inside its own
// AVX-512 intrinsic headers (avx512fintrin.h: `__m256d __Y = __Y;` in _mm256_undefined_pd, GCC bug
// 105593, fixed in GCC 13) wherever Eigen's AVX-512 packet code is inlined. The warning is a
// false positive in the compiler's header, not in Eigen or ihlab, so it is silenced here, around
// the include that brings those headers in, and nowhere else.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <Eigen/Dense>
#pragma GCC diagnostic pop
#else
#include <Eigen/Dense>
#endif
