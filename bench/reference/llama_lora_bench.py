#!/usr/bin/python3
"""PyTorch eager reference for Attune's benchmarks: LoRA fine-tuning step and KV-cached greedy decode.

    /usr/bin/python3 bench/reference/llama_lora_bench.py --shape stories15M --threads 1 --steps 10 --warmup 2
    /usr/bin/python3 bench/reference/llama_lora_bench.py --shape stories15M --threads 1 --mode decode
    /usr/bin/python3 bench/reference/llama_lora_bench.py --shape smollm2-135M --threads 2 --mode serve

A nanoGPT-sized Llama whose math matches HF LlamaForCausalLM (see test/fixtures/make_reference.py for the
checked transcription):
  * RMSNorm as LlamaRMSNorm: variance in fp32, rsqrt, then * weight
  * RoPE with rotate_half (HF layout), GQA via repeat_kv
  * eager attention: matmul -> + additive causal mask -> softmax(fp32) -> matmul
    (no SDPA: we want the same op sequence HF eager runs, which is what "PyTorch eager" means here)
  * SwiGLU MLP, tied lm_head
LoRA (rank 8, alpha 16, scale alpha/r, dropout 0, A kaiming-uniform and B zeros as in PEFT) sits on all 7
projections of every block. Base weights are frozen. AdamW (lr 1e-3) updates the LoRA params only, and the
loss is cross-entropy over every position. Weights are random (std 0.02), because speed does not depend on
their values.

--mode serve is the serving benchmark's reference: the same requests as bench/serve-load.ts (32 clients, mixed
prompt lengths, 8 adapters, 64 greedy tokens each) decoded one after another, each with its own adapter
(unmerged), as a sequential server would; every request arrives at time 0, so a request's latency is when it
ends and its time to first token is when its prefill ends.

Prints one JSON line. A train step is forward + backward + optimizer.step + zero_grad; we report the median
over --steps, after --warmup steps that are not timed.
"""
import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# Debian's torch does its matmuls in OpenBLAS (the pthreads build). OpenBLAS keeps its own thread pool,
# which torch.set_num_threads does not control, so with no cap a "1-thread" run uses every core and a
# 2-thread run oversubscribes. OpenBLAS reads its thread count once, when it loads, so we set these
# variables before importing torch. A value already set in the environment wins, for experiments.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, _threads_from_argv(sys.argv[1:]))
# libgomp's idle workers spin after every parallel region, and while they spin they take the core that
# OpenBLAS's worker (or any other process) needs. On this shared 2-core box a 2-thread step was 3-20x
# slower with spinning (ACTIVE/default) than with PASSIVE, so PASSIVE is our default. 1-thread runs
# have no workers, so they are unaffected.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Attune's workers spin briefly before they sleep (src/engine/tensor/native.ts); the reference gets the same
# libgomp setting, which it runs faster with too (bf16, 2 threads, Llama-3.2-1B: about 117 to 136 tok/s).
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SHAPES = {
    # dim, hidden (SwiGLU), layers, heads, kv heads, vocab, batch, seq; head_dim when not dim / heads,
    # qkv_bias (Qwen2), tied=False for a separate lm_head
    "stories260K": dict(dim=64, hidden=172, n_layers=5, n_heads=8, n_kv_heads=4, vocab=512, batch=8, seq=128),
    "stories15M": dict(dim=288, hidden=768, n_layers=6, n_heads=6, n_kv_heads=6, vocab=32000, batch=8, seq=128),
    "smollm2-135M": dict(dim=576, hidden=1536, n_layers=30, n_heads=9, n_kv_heads=3, vocab=49152, batch=2, seq=128),
    # Real configs (config.json of Qwen/Qwen2.5-0.5B, meta-llama/Llama-3.2-1B, -3B, Llama-3.1-8B)
    "qwen2.5-0.5b": dict(dim=896, hidden=4864, n_layers=24, n_heads=14, n_kv_heads=2, vocab=151936, batch=2, seq=256,
                         qkv_bias=True),
    "llama-3.2-1b": dict(dim=2048, hidden=8192, n_layers=16, n_heads=32, n_kv_heads=8, vocab=128256, batch=2, seq=256),
    "llama-3.2-3b": dict(dim=3072, hidden=8192, n_layers=28, n_heads=24, n_kv_heads=8, vocab=128256, batch=2, seq=256,
                         head_dim=128),
    "llama-3.1-8b": dict(dim=4096, hidden=14336, n_layers=32, n_heads=32, n_kv_heads=8, vocab=128256, batch=1, seq=256,
                         head_dim=128, tied=False),
}
ROPE_THETA = {"stories260K": 10000.0, "stories15M": 10000.0, "smollm2-135M": 100000.0, "qwen2.5-0.5b": 1000000.0,
              "llama-3.2-1b": 500000.0, "llama-3.2-3b": 500000.0, "llama-3.1-8b": 500000.0}
EPS = 1e-5
LORA_R, LORA_ALPHA = 8, 16


def frozen(shape, dtype):
    # Made in the weights' dtype directly: an 8B model's float32 staging would not fit in memory.
    return nn.Parameter(torch.randn(*shape, dtype=dtype) * 0.02, requires_grad=False)


class LoRALinear(nn.Module):
    """y = x W^T (+ b) + (x A^T B^T) * alpha/r. W is frozen. B starts at zero, so step 0 equals the base model,
    and it still gets a gradient, so the backward pass does the same work as a real fine-tune. A and B stay
    float32 (as PEFT keeps them); under autocast they are cast for each product."""

    def __init__(self, d_in, d_out, dtype, bias=False):
        super().__init__()
        self.weight = frozen((d_out, d_in), dtype)
        self.bias = frozen((d_out,), dtype) if bias else None
        self.lora_A = nn.Parameter(torch.empty(LORA_R, d_in))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(d_out, LORA_R))
        self.scale = LORA_ALPHA / LORA_R

    def forward(self, x, use_lora=True):
        y = F.linear(x, self.weight, self.bias)
        if use_lora:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale
        return y


class RMSNorm(nn.Module):
    def __init__(self, dim, dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype), requires_grad=False)

    def forward(self, x):  # LlamaRMSNorm
        dt = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
        return self.weight * h.to(dt)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    b, kv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


class Block(nn.Module):
    def __init__(self, c, dtype, attention):
        super().__init__()
        self.nh, self.nkv = c["n_heads"], c["n_kv_heads"]
        self.hd = c.get("head_dim", c["dim"] // c["n_heads"])
        self.attention = attention
        d, bias = c["dim"], c.get("qkv_bias", False)
        self.q_proj = LoRALinear(d, self.nh * self.hd, dtype, bias)
        self.k_proj = LoRALinear(d, self.nkv * self.hd, dtype, bias)
        self.v_proj = LoRALinear(d, self.nkv * self.hd, dtype, bias)
        self.o_proj = LoRALinear(self.nh * self.hd, d, dtype)
        self.gate_proj = LoRALinear(d, c["hidden"], dtype)
        self.up_proj = LoRALinear(d, c["hidden"], dtype)
        self.down_proj = LoRALinear(c["hidden"], d, dtype)
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d, dtype), RMSNorm(d, dtype)

    def forward(self, h, cos, sin, mask, cache=None, pos=0, use_lora=True):
        B, T, _ = h.shape
        x = self.input_layernorm(h)
        q = self.q_proj(x, use_lora).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x, use_lora).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x, use_lora).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:  # preallocated [B, KV, max_len, hd] buffers; write this step, read the prefix
            kc, vc = cache
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        k, v = repeat_kv(k, self.nh // self.nkv), repeat_kv(v, self.nh // self.nkv)
        if self.attention == "sdpa":  # what HF runs by default on torch >= 2.1
            causal = mask is not None and pos == 0  # the causal kernel needs no mask tensor
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=None if causal or mask is None else mask.to(q.dtype),
                                               is_causal=causal)
        else:
            att = torch.matmul(q, k.transpose(2, 3)) * self.hd ** -0.5
            if mask is not None:
                att = att + mask
            att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
            a = torch.matmul(att, v)
        a = a.transpose(1, 2).reshape(B, T, -1)
        h = h + self.o_proj(a, use_lora)
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(x, use_lora)) * self.up_proj(x, use_lora), use_lora)


class Llama(nn.Module):
    def __init__(self, c, theta, max_len, dtype, attention):
        super().__init__()
        self.c = c
        self.embed = frozen((c["vocab"], c["dim"]), dtype)
        self.layers = nn.ModuleList(Block(c, dtype, attention) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], dtype)
        self.head = self.embed if c.get("tied", True) else frozen((c["vocab"], c["dim"]), dtype)
        hd = c.get("head_dim", c["dim"] // c["n_heads"])
        inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        freqs = torch.arange(max_len).float()[:, None] * inv_freq[None]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin", emb.sin().to(dtype), persistent=False)

    def forward(self, ids, caches=None, pos=0, use_lora=True):
        T = ids.shape[1]
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        # additive causal mask (HF eager style); a single decode token may see the whole prefix, so no mask
        mask = None
        if T > 1:
            mask = torch.full((T, pos + T), torch.finfo(torch.float32).min).triu(pos + 1)
        h = F.embedding(ids, self.embed)
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, mask, None if caches is None else caches[i], pos, use_lora)
        return F.linear(self.norm(h), self.head)


def autocast(precision):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bench_train(model, c, steps, warmup, precision):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c["vocab"], (c["batch"], c["seq"] + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]
    times, cpu = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(precision):
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= warmup:
            times.append(dt)
            cpu.append(dc)
    step = statistics.median(times)
    # step_ms_min and cpu_ms (process CPU time, all threads) help spot runs disturbed by other load
    return {"train_tokens_per_s": round(c["batch"] * c["seq"] / step, 1), "step_ms": round(step * 1e3, 2),
            "step_ms_min": round(min(times) * 1e3, 2), "cpu_ms": round(statistics.median(cpu) * 1e3, 2),
            "loss": round(loss.item(), 4), "lora_params": sum(p.numel() for p in params),
            "batch": c["batch"], "seq": c["seq"]}


@torch.no_grad()
def generate(model, c, prompt, n_new, use_lora, precision, dtype):
    # preallocate the KV cache once, as a real decoder does
    max_len = prompt.shape[1] + n_new
    hd = c.get("head_dim", c["dim"] // c["n_heads"])
    caches = [(torch.zeros(1, c["n_kv_heads"], max_len, hd, dtype=dtype),
               torch.zeros(1, c["n_kv_heads"], max_len, hd, dtype=dtype)) for _ in range(c["n_layers"])]
    with autocast(precision):
        t0 = time.perf_counter()
        logits = model(prompt, caches, 0, use_lora)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        t1 = time.perf_counter()
        pos, out = prompt.shape[1], [nxt]
        for _ in range(n_new - 1):
            logits = model(nxt, caches, pos, use_lora)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            pos += 1
        t2 = time.perf_counter()
    return torch.cat(out, 1), t1 - t0, t2 - t1


def bench_decode(model, c, steps, warmup, use_lora, precision, dtype, prompt_len=16, n_new=128):
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, c["vocab"], (1, prompt_len), generator=g)
    prefill, decode = [], []
    for i in range(warmup + steps):
        _, tp, td = generate(model, c, prompt, n_new, use_lora, precision, dtype)
        if i >= warmup:
            prefill.append(tp)
            decode.append(td)
    td = statistics.median(decode)
    # the first token comes from the prefill, so the timed loop produces n_new - 1 tokens
    return {"decode_tokens_per_s": round((n_new - 1) / td, 1),
            "decode_tokens_per_s_best": round((n_new - 1) / min(decode), 1),
            "prefill_ms": round(statistics.median(prefill) * 1e3, 2),
            "prompt_tokens": prompt_len, "new_tokens": n_new, "lora": use_lora}


# bench/shapes.ts servingLoad: keep equal.
SERVE_CLIENTS, SERVE_ADAPTERS, SERVE_NEW_TOKENS = 32, 8, 64


def serve_prompt(i, vocab):
    length = 8 + (i * 37) % 57
    return [(i * 131 + j * 7 + 3) % vocab for j in range(length)]


def lora_layers(model):
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def bench_serve(model, c, precision, dtype):
    """Sequential decoding of the serving benchmark's requests; adapters swapped in per request."""
    layers = lora_layers(model)
    adapters = []
    for a in range(SERVE_ADAPTERS):
        g = torch.Generator().manual_seed(1000 + a)
        adapters.append([(torch.empty_like(m.lora_A).uniform_(-1 / math.sqrt(m.lora_A.shape[1]), 1 / math.sqrt(m.lora_A.shape[1]), generator=g),
                          torch.randn(m.lora_B.shape, generator=g) * 0.02) for m in layers])

    def use(a):
        with torch.no_grad():
            for m, (A, B) in zip(layers, adapters[a]):
                m.lora_A.copy_(A)
                m.lora_B.copy_(B)

    requests = [(serve_prompt(i, c["vocab"]), i % SERVE_ADAPTERS) for i in range(SERVE_CLIENTS)]
    use(0)
    generate(model, c, torch.tensor([requests[0][0]]), 2, True, precision, dtype)  # warm-up
    ends, firsts, tokens = [], [], 0
    t0 = time.perf_counter()
    for prompt, a in requests:
        use(a)
        start = time.perf_counter() - t0
        out, prefill, _ = generate(model, c, torch.tensor([prompt]), SERVE_NEW_TOKENS, True, precision, dtype)
        firsts.append(start + prefill)
        ends.append(time.perf_counter() - t0)
        tokens += out.shape[1]
    wall = ends[-1]

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1)]

    return {"output_tokens_per_s": round(tokens / wall, 2), "p50_latency_ms": round(pct(ends, 50) * 1e3, 1),
            "p99_latency_ms": round(pct(ends, 99) * 1e3, 1), "ttft_p50_ms": round(pct(firsts, 50) * 1e3, 1),
            "requests": len(requests), "output_tokens": tokens, "wall_s": round(wall, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "decode", "serve"], default="train")
    ap.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                    help="bf16: weights in bfloat16 and torch.autocast(bfloat16), LoRA and optimizer float32")
    ap.add_argument("--attention", choices=["eager", "sdpa"], default="eager",
                    help="sdpa: F.scaled_dot_product_attention (torch >= 2.0), as HF runs by default")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--decode-lora", action="store_true",
                    help="decode with the (unmerged) LoRA adapters active; default is the base model")
    a = ap.parse_args()

    # Must run before any parallel work. Interop threads are pinned to 1, so --threads is the only knob.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = SHAPES[a.shape]
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    if a.attention == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"torch {torch.__version__} has no scaled_dot_product_attention")
    model = Llama(c, ROPE_THETA[a.shape], max(c["seq"], 16 + a.new_tokens), dtype, a.attention)

    res = {"impl": "pytorch-eager", "shape": a.shape, "precision": a.precision, "attention": a.attention}
    if a.mode == "serve":
        res.update(mode="serve", threads=a.threads)
        res.update(bench_serve(model, c, a.precision, dtype))
    elif a.mode == "decode":
        res.update(mode="decode", threads=a.threads)
        res.update(bench_decode(model, c, a.steps, a.warmup, a.decode_lora, a.precision, dtype, n_new=a.new_tokens))
    else:
        res.update(mode="train", threads=a.threads)
        res.update(bench_train(model, c, a.steps, a.warmup, a.precision))
    res.update(steps=a.steps, warmup=a.warmup, torch=torch.__version__,
               openblas_threads=int(os.environ["OPENBLAS_NUM_THREADS"]), omp_wait_policy=os.environ["OMP_WAIT_POLICY"], gomp_spincount=os.environ["GOMP_SPINCOUNT"],
               max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
