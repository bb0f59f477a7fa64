/*
 * QEMU TCG plugin: count executed guest instructions, in total and inside
 * named address ranges (typically functions taken from the ELF symbol table).
 *
 * QEMU has no cycle model, so executed instructions are the only exact,
 * deterministic cost figure an emulated run can give; this plugin makes them
 * visible per kernel.  Counting is done with inline adds (no helper calls),
 * which keeps the emulation fast.  Cortex-M has a single vCPU, so the
 * non-atomic inline adds are exact.
 *
 * Arguments (comma-separated after the .so path on the -plugin option):
 *   out=PATH                    write the report to PATH (default: stderr)
 *   range=NAME:0xSTART:0xEND    count instructions whose address is in
 *                               [START, END); repeatable (MAX_RANGES times)
 *
 * Report lines:
 *   total <executed instructions>
 *   range <name> <start> <end> <executed instructions> <entries>
 * where entries counts executions of the instruction at START (i.e. calls,
 * for a function range whose entry is not a loop target).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_RANGES 512
#define MAX_NAME 128

struct range {
    char name[MAX_NAME];
    uint64_t start, end;
    uint64_t insns, entries;
};

static struct range ranges[MAX_RANGES];
static int n_ranges;
static uint64_t total_insns;
static char out_path[4096];

/* Instrument each translated instruction: bump the total and every range it
 * falls into.  Runs once per translation, not per execution. */
static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        qemu_plugin_register_vcpu_insn_exec_inline(
            insn, QEMU_PLUGIN_INLINE_ADD_U64, &total_insns, 1);
        for (int r = 0; r < n_ranges; r++) {
            if (pc < ranges[r].start || pc >= ranges[r].end) {
                continue;
            }
            qemu_plugin_register_vcpu_insn_exec_inline(
                insn, QEMU_PLUGIN_INLINE_ADD_U64, &ranges[r].insns, 1);
            if (pc == ranges[r].start) {
                qemu_plugin_register_vcpu_insn_exec_inline(
                    insn, QEMU_PLUGIN_INLINE_ADD_U64, &ranges[r].entries, 1);
            }
        }
    }
}

/* Write the report when QEMU exits (also on a semihosting exit). */
static void write_report(qemu_plugin_id_t id, void *userdata)
{
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (f == NULL) {
        perror(out_path);
        f = stderr;
    }
    fprintf(f, "total %" PRIu64 "\n", total_insns);
    for (int r = 0; r < n_ranges; r++) {
        fprintf(f, "range %s 0x%" PRIx64 " 0x%" PRIx64 " %" PRIu64 " %" PRIu64 "\n",
                ranges[r].name, ranges[r].start, ranges[r].end,
                ranges[r].insns, ranges[r].entries);
    }
    if (f != stderr) {
        fclose(f);
    }
}

/* Parse "NAME:0xSTART:0xEND" into the next free range slot. */
static int parse_range(const char *spec)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (n_ranges >= MAX_RANGES || c1 == NULL || c2 == NULL ||
        (size_t)(c1 - spec) >= MAX_NAME || c1 == spec) {
        return -1;
    }
    struct range *r = &ranges[n_ranges];
    memcpy(r->name, spec, c1 - spec);
    r->name[c1 - spec] = '\0';
    char *end;
    r->start = strtoull(c1 + 1, &end, 0);
    if (end != c2) {
        return -1;
    }
    r->end = strtoull(c2 + 1, &end, 0);
    if (*end != '\0' || r->end <= r->start) {
        return -1;
    }
    n_ranges++;
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0 &&
            strlen(argv[i] + 4) < sizeof(out_path)) {
            strcpy(out_path, argv[i] + 4);
        } else if (strncmp(argv[i], "range=", 6) == 0 &&
                   parse_range(argv[i] + 6) == 0) {
            continue;
        } else {
            fprintf(stderr, "insn_count_plugin: bad argument '%s'\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, write_report, NULL);
    return 0;
}
