// (Verilator escapes the "__" of Amaranth port names as "___05F".)
// Plain Verilator C++ driver of mgrade_top (no Python): config writes, the samples streamed in,
// per-step outputs (and the trace port, and an FST window) written to a binary file.
//
//   Vharness JOB.bin RESULT.bin [FST_FILE]
//
// JOB.bin (little endian, all uint32 unless noted):
//   magic 'MGRH', n_cfg, cfg_words, n_steps, in_words, out_words, trace_words,
//   trace_from, trace_to (steps whose trace is written), fst_from, fst_to (steps dumped to FST),
//   cfg payloads  n_cfg  x cfg_words
//   inputs        n_steps x in_words
// RESULT.bin: uint64 cycles, uint64 nanoseconds (wall, stepping only), n_steps x out_words,
//   (trace_to - trace_from) x trace_words.
#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

template <typename T>
static void setw(T &port, const uint32_t *w) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = w[0];
        if constexpr (sizeof(T) > 4) v |= (uint64_t)w[1] << 32;
        port = (T)v;
    } else {
        for (size_t i = 0; i < port.Words; ++i) port[i] = w[i];
    }
}

template <typename T>
static void getw(const T &port, uint32_t *w) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = (uint64_t)port;
        w[0] = (uint32_t)v;
        if constexpr (sizeof(T) > 4) w[1] = (uint32_t)(v >> 32);
    } else {
        for (size_t i = 0; i < port.Words; ++i) w[i] = port[i];
    }
}

static void die(const char *m) { fprintf(stderr, "harness: %s\n", m); exit(2); }

int main(int argc, char **argv) {
    if (argc < 3) die("usage: Vharness JOB.bin RESULT.bin [FST]");
    FILE *f = fopen(argv[1], "rb");
    if (!f) die("cannot open job");
    uint32_t hdr[11];
    if (fread(hdr, 4, 11, f) != 11 || hdr[0] != 0x4852474d) die("bad job header");
    const uint32_t n_cfg = hdr[1], cfg_words = hdr[2], n_steps = hdr[3], in_words = hdr[4],
                   out_words = hdr[5], trace_words = hdr[6], tr_from = hdr[7], tr_to = hdr[8],
                   fst_from = hdr[9], fst_to = hdr[10];
    std::vector<uint32_t> cfg((size_t)n_cfg * cfg_words), in((size_t)n_steps * in_words);
    if (fread(cfg.data(), 4, cfg.size(), f) != cfg.size()) die("short cfg");
    if (fread(in.data(), 4, in.size(), f) != in.size()) die("short inputs");
    fclose(f);
    std::vector<uint32_t> out((size_t)n_steps * out_words);
    std::vector<uint32_t> tr((size_t)(tr_to > tr_from ? tr_to - tr_from : 0) * (trace_words ? trace_words : 1));

    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
#if VM_TRACE
    ctx.traceEverOn(true);
#endif
    Vtop top(&ctx);
#if VM_TRACE
    VerilatedFstC *tfp = nullptr;
    if (argc > 3) {
        tfp = new VerilatedFstC;
        top.trace(tfp, 99);
        tfp->open(argv[3]);
    }
    bool dumping = false;
#endif
    uint64_t cycles = 0, t_ps = 0;
    uint32_t step = 0;
    auto tick = [&]() {
        top.clk = 1;
        top.eval();
#if VM_TRACE
        if (tfp && dumping) tfp->dump(t_ps + 1000);
#endif
        top.clk = 0;
        top.eval();
#if VM_TRACE
        if (tfp && dumping) tfp->dump(t_ps + 2000);
#endif
        t_ps += 2000;
        ++cycles;
    };
    top.clk = 0;
    top.rst = 1;
    top.cfg___05Fvalid = 0;
    top.i___05Fvalid = 0;
    top.o___05Fready = 1;
    top.eval();
    for (int i = 0; i < 3; ++i) tick();
    top.rst = 0;
    tick();
    top.cfg___05Fvalid = 1;
    for (uint32_t n = 0; n < n_cfg; ++n) {
        setw(top.cfg___05Fpayload, &cfg[(size_t)n * cfg_words]);
        tick();
    }
    top.cfg___05Fvalid = 0;
    tick();

    const uint64_t c0 = cycles;
    auto t0 = std::chrono::steady_clock::now();
    // Inputs stream in as fast as the design takes them (a dataflow design overlaps steps); with a
    // trace window or an FST window each step enters alone, so that the probe port and the waves
    // show that step's intermediates undisturbed by the next one.
    const bool stream = tr_to <= tr_from && fst_to <= fst_from;
    uint32_t sin = 0;
    for (step = 0; step < n_steps;) {
#if VM_TRACE
        dumping = step >= fst_from && step < fst_to;
#endif
        if (!top.i___05Fvalid && sin < n_steps && (stream || sin == step)) {
            setw(top.i___05Fpayload, &in[(size_t)sin * in_words]);
            top.i___05Fvalid = 1;
        }
        top.eval();
        const bool in_x = top.i___05Fvalid && top.i___05Fready;
        const bool out_x = top.o___05Fvalid && top.o___05Fready;
        if (out_x) {
            getw(top.o___05Fpayload, &out[(size_t)step * out_words]);
#ifdef HAS_TRACE
            if (step >= tr_from && step < tr_to)
                getw(top.probe, &tr[(size_t)(step - tr_from) * trace_words]);
#endif
        }
        tick();
        if (in_x) { top.i___05Fvalid = 0; ++sin; }
        if (out_x) ++step;
        if (cycles - c0 > (uint64_t)(step + 1) * 100000000ull) die("no output (hang?)");
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    cycles -= c0;
#if VM_TRACE
    if (tfp) { tfp->close(); delete tfp; }
#endif
    top.final();
    FILE *o = fopen(argv[2], "wb");
    if (!o) die("cannot write result");
    uint64_t head[2] = {cycles, (uint64_t)ns};
    fwrite(head, 8, 2, o);
    fwrite(out.data(), 4, out.size(), o);
    if (tr_to > tr_from) fwrite(tr.data(), 4, tr.size(), o);
    fclose(o);
    return 0;
}
