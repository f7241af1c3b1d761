# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the StyleGAN2 and StyleGAN3 generators (a script, not a test).

    .venv/bin/python bench/generator.py [--res 256 1024] [--batch 1 4 8] [--precision fp32 bf16]
    .venv/bin/python bench/generator.py --arch sg3 [--variants t r] [--res 256 1024] [--batch 1 4]

StyleGAN2 (default): for each resolution (config-f channel counts, random weights), batch size
and precision it prints images per second and the achieved GFLOP/s (nominal model FLOPs /
time), next to the machine's conv throughput measured in the same run (a 512->512 3x3 conv on
64x64, the best of NCHW and channels_last), and the speed-up over the straightforward
implementation (traeumer_blender.stylegan2.reference: grouped conv, separate up-sample and FIR
passes) on the same weights. Ratios measured within one run are what count on a shared machine.

StyleGAN3 (``--arch sg3``): NVIDIA's default configs (T: channel_base 32768, channel_max 512;
R: channel_base 65536, channel_max 1024, 1x1 convs, radial filters), 14 layers, margin 10, the
layer plan from NVIDIA's published rules (tests/stylegan3_fixtures.plan), random weights,
written in NVIDIA's pickle container and loaded by ``load_generator``. Per variant, resolution,
batch and precision (fp32; bf16 where the CPU has bf16 instructions): images per second, the
machine's conv throughput taking turns with it, a StyleGAN2 config-f of the same resolution
taking turns with it (cost ratio per image), at batch 1 the layers' modulated convs alone
(inputs of each layer's size and precision, no filtered activations: what StyleGAN3 costs even
if its filters were free, the floor of the ratio), and the straightforward path
(``G.set_reference(True)``: grouped conv, full-size up-sample / activation / filter passes) on
the same weights, batch 1, fp32, ``--reference-reps`` runs (one by default: ~70 s at 1024 px).
Every row names the CPU capability and whether the CPU has native bf16.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from traeumer_blender.stylegan2.generator import Generator, bf16_psnr, cpu_has_native_bf16  # noqa: E402
from traeumer_blender.stylegan2.network import GeneratorConfig  # noqa: E402
from traeumer_blender.stylegan2.reference import reference_synthesis  # noqa: E402


def config_f(resolution: int) -> GeneratorConfig:
    lg = resolution.bit_length() - 1
    ch = {2 ** i: min(32768 // 2 ** i, 512) for i in range(2, lg + 1)}
    return GeneratorConfig(resolution=resolution, z_dim=512, w_dim=512, mapping_dims=[512] * 9, channels=ch)


def synthesis_flops(cfg: GeneratorConfig) -> float:
    """Nominal multiply-add x2 per image (a stride-2 transposed conv costs a quarter of a plain one)."""
    ch, total = cfg.channels, 0.0
    for r in cfg.resolutions:
        c = ch[r]
        if r > 4:
            total += 2 * ch[r // 2] * c * 9 * (r // 2) ** 2
        total += 2 * c * c * 9 * r * r + 2 * c * 3 * r * r
    return total


DEVICE = torch.device("cpu")   # --device (a GPU session: cuda)


def _sync() -> None:
    """Wait for the GPU's queued work, so that a timing covers it (nothing to wait for on a CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, reps: int, warm: bool = True) -> dict:
    """Best time of each function, the functions taking turns (fair on a machine shared with
    others: a burst of load hits all of them, and the best of several runs filters it out)."""
    for fn in fns.values() if warm else ():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            _sync()
            t = time.perf_counter()
            fn()
            _sync()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


CONV_FLOPS = 2 * 512 * 512 * 9 * 64 * 64


def conv_fn(dtype=torch.float32, fmt=torch.channels_last):
    """A large 3x3 conv (512->512 on 64x64, batch 1): the machine's reference throughput."""
    x = torch.randn(1, 512, 64, 64).to(device=DEVICE, dtype=dtype, memory_format=fmt)
    w = torch.randn(512, 512, 3, 3).to(device=DEVICE, dtype=dtype, memory_format=fmt)
    return lambda: F.conv2d(x, w, padding=1)


def sg3_flops(G) -> float:
    """Nominal multiply-add x2 per image of the modulated convs (full convs: output in + k - 1)."""
    return sum(2.0 * s.in_channels * s.out_channels * s.kernel ** 2 * (s.in_size + s.kernel - 1) ** 2
               for s in G.cfg.layers)


def sg3_generator(variant: str, res: int, folder: str):
    """NVIDIA's default config of a variant at ``res``, random weights, through the real loader."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import stylegan3_fixtures as fx3

    from traeumer_blender.stylegan2 import load_generator

    path = os.path.join(folder, f"sg3{variant}_{res}.pkl")
    fx3.write_nvidia_sg3(path, variant, resolution=res, num_layers=14, margin=10, z_dim=512, w_dim=512,
                         **fx3.NVIDIA_CONFIGS[variant])
    G = load_generator(path, device=DEVICE, precision="fp32")
    os.remove(path)
    return G


def sg3_upsampled_values(G) -> float:
    """Values per image the filtered leaky ReLUs evaluate the activation on (the up-sampled,
    padded grids of every layer but ToRGB, times its channels)."""
    total = 0.0
    for s in G.cfg.layers:
        if s.is_torgb:
            continue
        px0, px1, py0, py1 = s.padding
        n = (s.in_size + s.kernel - 1) * s.up
        total += (n + px0 + px1 - s.up_taps + 1) * (n + py0 + py1 - s.up_taps + 1) * s.out_channels
    return total


def sg3_convs_fn(G, ws):
    """Only the modulated convs of every layer, on inputs of their size and precision: what one
    image costs even if the filtered activations were free (the floor of the SG3 / SG2 ratio)."""
    layers = G.net.synthesis.layers
    fmt = torch.channels_last if DEVICE.type == "cpu" else torch.contiguous_format
    xs = [torch.randn(1, L.spec.in_channels, L.spec.in_size, L.spec.in_size, device=DEVICE)
          .to(L.dtype).contiguous(memory_format=fmt) for L in layers]
    styles = [L.affine(ws[:1, i + 1].float()) for i, L in enumerate(layers)]

    def run():
        for L, x, s in zip(layers, xs, styles):
            L._conv(x, s)
    return run


def bench_sg3(args, native_bf16: bool, cpu: str) -> None:
    import tempfile

    conv = conv_fn()
    print("| CPU | model | res | batch | precision | img/s | ms/img | conv GFLOP/s | % of conv | "
          "StyleGAN2-f ms/img | SG3 / SG2 | convs alone ms/img | convs alone / SG2 | straightforward ms/img | speed-up |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []

    def note(line):   # printed at the end, below the table; at once on stderr (a run may be cut short)
        notes.append(line)
        print(f"note: {line}", file=sys.stderr, flush=True)

    for res in args.res:
        sg2 = Generator(config_f(res), source_id="bench")
        sg2.eval().requires_grad_(False)
        sg2.configure(DEVICE, "fp32")
        for variant in args.variants:
            with tempfile.TemporaryDirectory() as folder:
                G = sg3_generator(variant, res, folder)
            flops = sg3_flops(G)
            gen = torch.Generator().manual_seed(res)
            ws1 = G.mapping(torch.randn(1, G.z_dim, generator=gen))
            # the straightforward path on the same weights: batch 1, fp32
            G.set_reference(True)
            times = []
            for _ in range(args.reference_reps):
                t = time.perf_counter()
                ref = G.synthesis(ws1)
                times.append(time.perf_counter() - t)
            G.set_reference(False)
            t_ref = min(times)
            fast = G.synthesis(ws1)
            note(f"stylegan3-{variant} {res} px: fast vs straightforward max abs diff "
                         f"{(fast - ref).abs().max().item():.2e}")
            for batch in args.batch:
                ws = G.mapping(torch.randn(batch, G.z_dim, generator=gen))
                ws2 = torch.randn(batch, sg2.n_latent, sg2.w_dim, generator=gen)
                for prec in args.precision:
                    if prec == "bf16" and not native_bf16:
                        continue

                    def run(G=G, prec=prec, ws=ws):
                        if G.precision != prec:
                            G.configure(DEVICE, prec)
                        return G.synthesis(ws)
                    fns = {"conv": conv, "sg3": run, "sg2": lambda prec=prec, ws2=ws2: run(sg2, prec, ws2)}
                    if batch == 1:      # after run() has configured the precision
                        run()
                        fns["convs"] = sg3_convs_fn(G, ws)
                    reps = args.reps if res <= 512 else args.reps_large
                    best = interleaved(fns, reps=reps, warm=batch == args.batch[0])
                    t = best["sg3"] / batch
                    gf = flops / t / 1e9
                    conv_gf = CONV_FLOPS / best["conv"] / 1e9
                    t2 = best["sg2"] / batch
                    base = f"{t_ref * 1e3:.0f} | {t_ref / t:.1f}x" if (batch == 1 and prec == "fp32") else "- | -"
                    floor = f"{best['convs'] * 1e3:.0f} | {best['convs'] / t2:.2f}x" if "convs" in best else "- | -"
                    print(f"| {cpu} | stylegan3-{variant} | {res} | {batch} | {prec} | {1 / t:.3f} | {t * 1e3:.0f} | "
                          f"{conv_gf:.0f} | {100 * gf / conv_gf:.0f}% | {t2 * 1e3:.0f} | {t / t2:.2f}x | {floor} | {base} |",
                          flush=True)
            if native_bf16 and "bf16" in args.precision:
                G.configure(DEVICE, "fp32")
                n = 2 if res <= 512 else 1
                note(f"stylegan3-{variant} {res} px: bf16 vs fp32 PSNR {bf16_psnr(G, n=n):.1f} dB "
                             f"(lowest of {n} random ws)")
            note(f"stylegan3-{variant} {res} px: nominal modulated-conv cost {flops / 1e9:.0f} GFLOP per image "
                         f"(StyleGAN2-f: {synthesis_flops(sg2.cfg) / 1e9:.0f})")
            values = sg3_upsampled_values(G)
            note(f"stylegan3-{variant} {res} px: {values / 1e9:.2f} G up-sampled activation values per image; "
                 f"their up y and down y taps alone (6 + 6 multiply-adds each) are {24 * values / 1e9:.0f} GFLOP")
            del G
    print()
    for line in notes:
        print(f"- {line}")


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--arch", choices=["sg2", "sg3"], default="sg2", help="StyleGAN2 (default) or StyleGAN3")
    ap.add_argument("--variants", nargs="+", choices=["t", "r"], default=["t", "r"], help="StyleGAN3 configs")
    ap.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="default: 1 4 8 (sg2), 1 4 (sg3)")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--reference-reps", type=int, default=1, help="sg3: timed runs of the straightforward path")
    ap.add_argument("--reps-large", type=int, default=1, help="sg3: timed runs above 512 px")
    ap.add_argument("--baseline-max-batch", type=int, default=8,
                    help="largest batch timed with the straightforward implementation")
    ap.add_argument("--reps", type=int, default=3, help="timed runs of each variant (best is kept)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the generators run")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU here")
    if args.threads:
        torch.set_num_threads(args.threads)
    from traeumer_blender.allocator import keep_freed_memory
    kept = keep_freed_memory()      # as the CLI and the worker do
    torch.manual_seed(0)
    native_bf16 = cpu_has_native_bf16()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16}, "
          f"keep_freed_memory: {kept}")
    if args.batch is None:
        args.batch = [1, 4] if args.arch == "sg3" else [1, 4, 8]
    peak = interleaved({"nchw": conv_fn(fmt=torch.contiguous_format), "cl": conv_fn(),
                        "bf16": conv_fn(torch.bfloat16)}, reps=3)
    print(f"machine conv throughput (512->512 3x3 @64x64, batch 1): fp32 NCHW {CONV_FLOPS / peak['nchw'] / 1e9:.0f}, "
          f"fp32 channels_last {CONV_FLOPS / peak['cl'] / 1e9:.0f}, bf16 {CONV_FLOPS / peak['bf16'] / 1e9:.0f} GFLOP/s")
    print("(each row below re-measures the fp32 conv, taking turns with the generator runs: "
          "'% of conv' compares numbers measured under the same load)")
    print()
    if args.arch == "sg3":
        cpu = f"{torch.backends.cpu.get_cpu_capability()}, {'avx512_bf16' if native_bf16 else 'no avx512_bf16'}"
        return bench_sg3(args, native_bf16, cpu)
    print("| res | batch | precision | img/s | ms/img | GFLOP/s | conv GFLOP/s | % of conv | straightforward ms/img | speed-up |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    conv = conv_fn()
    for res in args.res:
        cfg = config_f(res)
        G = Generator(cfg, source_id="bench")
        G.eval().requires_grad_(False)
        G.configure(DEVICE, "fp32")
        flops = synthesis_flops(cfg)
        sd = G.net.state_dict()
        for batch in args.batch:
            ws = torch.randn(batch, cfg.n_latent, cfg.w_dim)
            for prec in args.precision:
                if prec == "bf16" and not native_bf16 and batch > 1:
                    continue  # ~10x slower without bf16 instructions; timed at batch 1 only
                fns = {"conv": conv}

                def run(prec=prec):
                    if G.precision != prec:
                        G.configure(DEVICE, prec)
                    return G.synthesis(ws)
                fns["gen"] = run
                with_base = prec == "fp32" and batch <= args.baseline_max_batch
                if with_base:
                    fns["base"] = lambda: reference_synthesis(cfg, sd, ws)
                best = interleaved(fns, reps=args.reps)
                t = best["gen"] / batch
                gf = flops / t / 1e9
                conv_gf = CONV_FLOPS / best["conv"] / 1e9
                base = f"{best['base'] / batch * 1e3:.0f} | {best['base'] / best['gen']:.2f}x" if with_base else "- | -"
                print(f"| {res} | {batch} | {prec} | {1 / t:.2f} | {t * 1e3:.0f} | {gf:.0f} | {conv_gf:.0f} | "
                      f"{100 * gf / conv_gf:.0f}% | {base} |", flush=True)
        if "bf16" in args.precision:
            G.configure(DEVICE, "fp32")
            print(f"\nbf16 vs fp32 at {res} px, 4 random ws: PSNR {bf16_psnr(G, n=4):.1f} dB (lowest of the 4)",
                  flush=True)
        print(f"\n(nominal synthesis cost at {res} px: {flops / 1e9:.1f} GFLOP per image)\n", flush=True)


if __name__ == "__main__":
    main()
