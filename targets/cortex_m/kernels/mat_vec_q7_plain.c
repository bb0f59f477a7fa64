/*
 * Plain-C int8 matrix-vector product with CMSIS-DSP's q7 semantics:
 * int32 accumulation, arithmetic shift right by 7, saturation to int8.
 * It is the compiler-only baseline next to the hand-written Helium kernel,
 * so it must stay free of intrinsics.
 */
#include <stdint.h>

#include "mat_vec_q7_plain.h"

void mat_vec_q7_plain(const int8_t *restrict mat, const int8_t *restrict vec,
                      int8_t *restrict out, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        const int8_t *row = mat + (uint32_t)r * cols;
        int32_t acc = 0;
        for (uint32_t c = 0; c < cols; c++) {
            acc += (int32_t)row[c] * (int32_t)vec[c];
        }
        acc >>= 7;
        out[r] = (int8_t)(acc > 127 ? 127 : (acc < -128 ? -128 : acc));
    }
}
