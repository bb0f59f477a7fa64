/*
 * Runtime helpers for bare-metal programs run under QEMU mps3-an547.
 *
 * Output convention: every machine-readable line starts with "@@" so the host
 * side can separate results from free-form program output:
 *   @@<name>=<hex bytes>     an array written by tvmse_print_hex()
 *   @@tvmse:stack_hwm=<N>    stack high-water mark in bytes (printed at exit)
 *   @@tvmse:stack_size=<N>   size of the stack region in bytes
 *   @@tvmse:fault=<IPSR>     an unexpected exception; the program exits
 *                            with TVMSE_FAULT_EXIT_CODE
 */
#ifndef TVMSE_RT_H
#define TVMSE_RT_H

#include <stddef.h>
#include <stdint.h>

/* Exit status used when the core takes an unexpected exception. */
#define TVMSE_FAULT_EXIT_CODE 125

/* Print "@@<name>=" followed by n bytes as lowercase hex and a newline. */
void tvmse_print_hex(const char *name, const void *data, size_t n);

/* Bytes of the stack region written so far (paint-and-scan). */
size_t tvmse_stack_high_water(void);

#endif /* TVMSE_RT_H */
