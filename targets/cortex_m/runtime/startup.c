/*
 * Startup code for bare-metal programs on QEMU mps3-an547 (Cortex-M55).
 *
 * The reset handler enables the FPU and Helium (MVE) before any C code that
 * might use them and paints the whole stack before anything is pushed, so its
 * high-water mark can be measured exactly; it then copies .data from its load
 * image, zeroes .bss, opens the semihosting stdio handles (newlib rdimon) and
 * calls main().  main's return value goes through
 * exit(), which rdimon turns into a semihosting exit, so it becomes QEMU's
 * exit status.  The stack high-water mark is printed from an atexit handler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tvmse_rt.h"

/* Word the reset handler fills the stack with (must match its assembly). */
#define STACK_PAINT 0xA5A5A5A5u

extern uint32_t __data_start, __data_end, __data_load;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __sram_bss_start, __sram_bss_end;
extern uint32_t __stack_base, __stack_top;

extern void initialise_monitor_handles(void);
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

/* 16 system exceptions; no interrupt is enabled, so no IRQ entries. */
__attribute__((section(".vectors"), used))
const void *const tvmse_vector_table[16] = {
    &__stack_top,  Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
};

/* Angel semihosting call (BKPT 0xAB on M-profile). */
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Any exception other than reset is unexpected here: report which one and
 * exit with a distinctive status instead of hanging until the timeout. */
void Fault_Handler(void)
{
    static char msg[] = "\n@@tvmse:fault=000\n";
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    msg[15] = (char)('0' + (ipsr / 100) % 10);
    msg[16] = (char)('0' + (ipsr / 10) % 10);
    msg[17] = (char)('0' + ipsr % 10);
    semihost(0x04 /* SYS_WRITE0 */, msg);
    uint32_t exit_args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */,
                             TVMSE_FAULT_EXIT_CODE};
    semihost(0x20 /* SYS_EXIT_EXTENDED */, exit_args);
    for (;;) {
    }
}

size_t tvmse_stack_high_water(void)
{
    /* The untouched part lies at the bottom; scan it 16 bytes at a time
     * (the region is 16-byte aligned at both ends) to keep the exit cheap. */
    const uint32_t *p = &__stack_base;
    const uint32_t *top = &__stack_top;
    while (p < top && ((p[0] ^ STACK_PAINT) | (p[1] ^ STACK_PAINT) |
                       (p[2] ^ STACK_PAINT) | (p[3] ^ STACK_PAINT)) == 0) {
        p += 4;
    }
    while (p < top && *p == STACK_PAINT) {
        p++;
    }
    return (size_t)((const char *)top - (const char *)p);
}

static void report_stack(void)
{
    size_t size = (size_t)((char *)&__stack_top - (char *)&__stack_base);
    printf("@@tvmse:stack_hwm=%u\n@@tvmse:stack_size=%u\n",
           (unsigned)tvmse_stack_high_water(), (unsigned)size);
}

/* C part of the reset sequence; runs on the already painted stack. */
__attribute__((noreturn, used)) static void c_start(void)
{
    memcpy(&__data_start, &__data_load,
           (size_t)((char *)&__data_end - (char *)&__data_start));
    memset(&__bss_start__, 0,
           (size_t)((char *)&__bss_end__ - (char *)&__bss_start__));
    memset(&__sram_bss_start, 0,
           (size_t)((char *)&__sram_bss_end - (char *)&__sram_bss_start));

    initialise_monitor_handles();
    atexit(report_stack);
    exit(main());
}

/* Written without a stack frame so that the whole stack region can be
 * painted before anything is pushed: the measured high-water mark is then
 * exact.  FPU and MVE are enabled first, before any compiled C code runs. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr   r0, =0xE000ED88\n\t"     /* CPACR: CP10/CP11 full access */
        "ldr   r1, [r0]\n\t"
        "orr   r1, r1, #(0xF << 20)\n\t"
        "str   r1, [r0]\n\t"
        "dsb\n\t"
        "isb\n\t"
        "ldr   r0, =__stack_base\n\t"   /* paint [__stack_base, __stack_top) */
        "ldr   r1, =__stack_top\n\t"
        "ldr   r2, =0xA5A5A5A5\n\t"     /* both ends are 16-byte aligned */
        "mov   r3, r2\n\t"
        "mov   r12, r2\n\t"
        "mov   lr, r2\n\t"
        "1:\n\t"
        "cmp   r0, r1\n\t"
        "bhs   2f\n\t"
        "stmia r0!, {r2, r3, r12, lr}\n\t"
        "b     1b\n\t"
        "2:\n\t"
        "mov   sp, r1\n\t"
        "b     c_start\n\t"
        ".ltorg\n\t");
}
