"""Tiny random text-to-image pipelines (SD3, Flux, PixArt), built offline and saved with save_pretrained.

Tokenizers come from the ``tokenizers`` library (a word-level CLIP-style vocabulary with BOS/EOS, model_max_length
77) and ``ByT5Tokenizer`` (needs no files) for T5; every model is a few thousand parameters.
"""
from __future__ import annotations

import json
import os

import torch

WORDS = ("a photo of the an dog cat red blue car tree house sky bird fish painting city at night sunset in on "
         "with big small green old new boat flower").split()
CLIP_DIM = 16


def clip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, "<|startoftext|>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 1), ("<|endoftext|>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<unk>", model_max_length=77)


def clip_config(projection_dim: int = 8):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(WORDS) + 3, hidden_size=CLIP_DIM, intermediate_size=32, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=projection_dim,
                          bos_token_id=1, eos_token_id=0, pad_token_id=0)


def t5_parts():
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(3)
    cfg = T5Config(vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   relative_attention_num_buckets=8, is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(cfg).eval(), ByT5Tokenizer()


def tiny_vae(latent_channels: int, shift: float | None = None, scale: float = 1.5305):
    from diffusers import AutoencoderKL

    torch.manual_seed(4)
    kw = {} if shift is None else {"shift_factor": shift}
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=4, sample_size=16,
                         scaling_factor=scale, **kw).eval()


def build_sd3(with_t5: bool = True):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    te1 = CLIPTextModelWithProjection(clip_config(8)).eval()
    te2 = CLIPTextModelWithProjection(clip_config(8)).eval()
    t5, tok3 = t5_parts() if with_t5 else (None, None)
    torch.manual_seed(1)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                        pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16).eval()
    _randomise_zero_init(transformer)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=tiny_vae(4, shift=0.0609),
                                    text_encoder=te1, tokenizer=clip_tokenizer(), text_encoder_2=te2,
                                    tokenizer_2=clip_tokenizer(), text_encoder_3=t5, tokenizer_3=tok3)


def build_flux(guidance: bool = True):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    te = CLIPTextModel(clip_config()).eval()
    t5, tok2 = t5_parts()
    torch.manual_seed(1)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                         pooled_projection_dim=CLIP_DIM, guidance_embeds=guidance,
                                         axes_dims_rope=(2, 2, 4)).eval()
    _randomise_zero_init(transformer)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(transformer=transformer, scheduler=scheduler, vae=tiny_vae(4, shift=0.1159, scale=0.3611),
                        text_encoder=te, tokenizer=clip_tokenizer(), text_encoder_2=t5, tokenizer_2=tok2)


def build_pixart():
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    t5, tok = t5_parts()
    torch.manual_seed(1)
    transformer = PixArtTransformer2DModel(sample_size=8, num_layers=1, patch_size=2, attention_head_dim=8,
                                           num_attention_heads=2, in_channels=4, out_channels=8, cross_attention_dim=16,
                                           caption_channels=16).eval()
    return PixArtAlphaPipeline(tokenizer=tok, text_encoder=t5, vae=tiny_vae(4), transformer=transformer,
                               scheduler=DPMSolverMultistepScheduler())


def _randomise_zero_init(model: torch.nn.Module) -> None:
    """diffusers zero-initialises some adaLN / output layers; random values make every path observable."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if not p.abs().sum():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def save_pipeline(pipe, folder: str) -> str:
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_in_hf_cache(pipe, cache: str, repo_id: str, revision: str = "0123456789abcdef0123456789abcdef01234567") -> str:
    """The Hugging Face cache layout: models--org--name/snapshots/<rev>/ and refs/main."""
    repo = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    snap = os.path.join(repo, "snapshots", revision)
    pipe.save_pretrained(snap, safe_serialization=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as fh:
        fh.write(revision)
    return snap


def model_index(folder: str) -> dict:
    with open(os.path.join(folder, "model_index.json")) as fh:
        return json.load(fh)
