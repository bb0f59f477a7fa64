#ifndef MAT_VEC_Q7_PLAIN_H
#define MAT_VEC_Q7_PLAIN_H

#include <stdint.h>

/* out[r] = sat8((sum_c mat[r*cols + c] * vec[c]) >> 7), as CMSIS-DSP q7. */
void mat_vec_q7_plain(const int8_t *restrict mat, const int8_t *restrict vec,
                      int8_t *restrict out, uint32_t rows, uint32_t cols);

#endif
