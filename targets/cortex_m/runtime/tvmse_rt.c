/* Host-readable output helpers; see tvmse_rt.h for the line format. */
#include <stdio.h>

#include "tvmse_rt.h"

void tvmse_print_hex(const char *name, const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *bytes = data;
    char chunk[129];
    size_t fill = 0;

    printf("@@%s=", name);
    for (size_t i = 0; i < n; i++) {
        chunk[fill++] = digits[bytes[i] >> 4];
        chunk[fill++] = digits[bytes[i] & 0xF];
        if (fill == sizeof(chunk) - 1) {
            chunk[fill] = '\0';
            fputs(chunk, stdout);
            fill = 0;
        }
    }
    chunk[fill] = '\0';
    fputs(chunk, stdout);
    fputc('\n', stdout);
}
