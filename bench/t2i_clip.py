#!/usr/bin/env python
"""CLIP text encoding for text-to-image c: the pipeline's 77-token padding against dtviz's per-batch padding.

    python bench/t2i_clip.py [N] [--json docs/t2i-clip.json]   (default N = 64 prompts of imagenet_photo.txt, one thread)

A random CLIP-L-shaped CLIPTextModelWithProjection (12 layers, width 768; no weights are downloaded) with the
tests' word-level tokenizer encodes the same prompts padded to 77 tokens (what _get_clip_prompt_embeds does) and
padded to the batch's longest prompt (what TextToImageSource.encode_all does); prints both times and the largest
difference of the pooled projections; --json also writes them (docs/sources.md's sentence is generated from it by
scripts/docs_numbers.py).
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import torch  # noqa: E402


def main(n: int = 64, json_path: str | None = None) -> None:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from dtviz.sources.prompts import read_prompts
    from t2i_factories import WORDS, clip_tokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=len(WORDS) + 3, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77, projection_dim=768, bos_token_id=1,
                         eos_token_id=0, pad_token_id=0)
    model, tok = CLIPTextModelWithProjection(cfg).eval(), clip_tokenizer()
    prompts = read_prompts("imagenet-photo")[:n]
    pooled, rows = {}, []
    with torch.no_grad():
        for name, padding in (("77 tokens (pipeline)", "max_length"), ("longest in batch (dtviz)", "longest")):
            ids = tok(prompts, padding=padding, max_length=77, truncation=True, return_tensors="pt").input_ids
            start = time.perf_counter()
            pooled[name] = model(ids, output_hidden_states=True)[0]
            seconds = time.perf_counter() - start
            rows.append({"padding": padding, "tokens": int(ids.shape[1]), "seconds": round(seconds, 2)})
            print(f"{n} prompts padded to {ids.shape[1]:>2} tokens, {name}: {seconds:.2f} s")
    a, b = pooled.values()
    difference = (a - b).abs().max().item()
    print(f"max |difference| of the pooled projections: {difference:.2e}")
    if json_path:
        import json

        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "prompts": n, "load": round(os.getloadavg()[0], 2),
                       "rows": rows, "max_difference": difference}, fh, indent=1)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=64)
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args()
    main(args.n, args.json)
