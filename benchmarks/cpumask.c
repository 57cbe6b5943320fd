/* Makes a Python process see an older x86 CPU: CPUID reports fewer SIMD extensions,
 * so numpy, OpenBLAS, onnxruntime (MLAS) and simsimd pick the kernels they would pick
 * there, and run them for real on this CPU. A benchmark and test tool, never deployed.
 *
 * How: Linux's ARCH_SET_CPUID makes the CPUID instruction fault (on CPUs with CPUID
 * faulting, "cpuid_fault" in /proc/cpuinfo); the SIGSEGV handler below runs the real
 * CPUID with faulting briefly off, clears the bits of the extensions to hide, and steps
 * over the instruction. The setting is per thread, inherited by new threads, and reset
 * by execve, so the library (LD_PRELOAD) sets it again in every process it loads into.
 *
 * CPUMASK names the CPU to look like:
 *   avx2            no AVX-512, no VNNI, no AMX (Haswell to Zen 3)
 *   avx-vnni        avx2 plus AVX-VNNI (Alder Lake and later client CPUs)
 *   avx512-no-vnni  AVX-512 F/CD/BW/DQ/VL only (Skylake-SP)
 * Only processes whose executable is python* are changed: node (Azurite) installs its
 * own SIGSEGV handler. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

/* Bits to clear: leaf 7 subleaf 0 EBX, ECX, EDX; leaf 7 subleaf 1 EAX, EDX. */
static uint32_t clear7_ebx, clear7_ecx, clear7_edx, clear71_eax, clear71_edx;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)info;
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: let it crash as usual */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
    real_cpuid(leaf, sub, r);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~clear7_ebx;
        r[2] &= ~clear7_ecx;
        r[3] &= ~clear7_edx;
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~clear71_eax;
        r[3] &= ~clear71_edx;
    }
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
}

__attribute__((constructor)) static void install(void) {
    const char *mask = getenv("CPUMASK");
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (!mask || len <= 0) return;
    exe[len] = 0;
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    if (strncmp(base, "python", 6) != 0) return;

    /* VNNI and the matrix units, wherever they live. */
    uint32_t vnni7_ecx = BIT(11);                            /* AVX512_VNNI */
    uint32_t vnni7_edx = BIT(2) | BIT(22) | BIT(24) | BIT(25); /* 4VNNIW, AMX-BF16/TILE/INT8 */
    uint32_t vnni71_edx = BIT(4) | BIT(10);                  /* AVX-VNNI-INT8, -INT16 */
    /* AVX-512 beyond Skylake-SP's F/CD/BW/DQ/VL. */
    uint32_t late7_ebx = BIT(21) | BIT(26) | BIT(27);        /* IFMA, PF, ER */
    uint32_t late7_ecx = BIT(1) | BIT(6) | BIT(12) | BIT(14); /* VBMI, VBMI2, BITALG, VPOPCNTDQ */
    uint32_t late7_edx = BIT(3) | BIT(8) | BIT(23);          /* 4FMAPS, VP2INTERSECT, FP16 */
    uint32_t late71_eax = BIT(5) | BIT(21) | BIT(23);        /* AVX512_BF16, AMX-FP16, AVX-IFMA */
    uint32_t base7_ebx = BIT(16) | BIT(17) | BIT(28) | BIT(30) | BIT(31); /* F DQ CD BW VL */

    if (strcmp(mask, "avx512-no-vnni") == 0) {
        clear7_ebx = late7_ebx;
        clear7_ecx = vnni7_ecx | late7_ecx;
        clear7_edx = vnni7_edx | late7_edx;
        clear71_eax = BIT(4) | late71_eax; /* AVX-VNNI too */
        clear71_edx = vnni71_edx;
    } else if (strcmp(mask, "avx2") == 0 || strcmp(mask, "avx-vnni") == 0) {
        clear7_ebx = base7_ebx | late7_ebx;
        clear7_ecx = vnni7_ecx | late7_ecx;
        clear7_edx = vnni7_edx | late7_edx;
        clear71_eax = late71_eax | (strcmp(mask, "avx2") == 0 ? BIT(4) : 0);
        clear71_edx = vnni71_edx;
    } else {
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}
