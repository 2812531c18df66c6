"""The paper's reported numbers, transcribed exactly as printed (strings; bold marks dropped).

Source: "A Hidden Semantic Bottleneck in Conditional Embeddings of Diffusion Transformers", anonymous
authors, ICLR 2026 submission (double-blind review copy), Tables 1, 2, 4 and 5. The reference copy is
/work/shared/reference/hidden-semantic-bottleneck-paper.md; tests/test_reference.py parses the tables of
that file and checks this transcription against them. Statistics are taken at each model's first sampling
step t0 (Sec. 5), y+t unless a row says "y".

Printed inconsistencies are kept as printed: REPA's nPR(y+t) is 1.53% in Table 1 and 1.43 in Table 4.
"""

CITATION = ("A Hidden Semantic Bottleneck in Conditional Embeddings of Diffusion Transformers. "
            "Anonymous authors, ICLR 2026 submission (under double-blind review).")

# Table 1: column header → the XL checkpoint the paper analyses (Sec. 3: "official pretrained checkpoints
# released on GitHub (XL models)"; REPA is named "REPA-XL" in Sec. 1).
XL_NAMES = {"DiT": "DiT-XL/2", "SiT": "SiT-XL/2", "MDT": "MDT-XL/2", "LightningDiT": "LightningDiT-XL",
            "MG": "MG-XL", "REPA": "REPA-XL"}

TABLE1 = {
    "caption": "Participation Ratio (PR) in learned conditional embeddings of state-of-the-art models on "
               "Imagenet-1K generation (discrete) and DeepFashion/VGGSound (continuous).",
    "columns": ("DiT", "SiT", "MDT", "LightningDiT", "MG", "REPA", "X-MDPT", "MDSGen"),
    "rows": {
        "d": ("1152", "1152", "1152", "1152", "1152", "1152", "1024", "768"),
        "pr": ("120.69", "26.25", "18.45", "23.70", "19.98", "17.67", "495.75", "104.22"),
        "npr": ("10.47%", "2.28%", "1.60%", "2.05%", "1.73%", "1.53%", "48.42%", "13.57%"),
        "cosine": ("0.9001", "0.9852", "0.9905", "0.9779", "0.9934", "0.9946", "0.9998", "0.9999"),
    },
}

# Table 4 (ImageNet-1K): superscript 1 = AdaLN, 2 = concatenation (UViT).
TABLE4 = {
    "caption": "Separate timestep (t) and conditions (y): PR in learned conditional embeddings of "
               "state-of-the-art models on Imagenet-1K class-conditioned generation.",
    "columns": ("DiT", "SiT", "MDT", "LightningDiT", "MG", "REPA", "UViT"),
    "conditioning": ("AdaLN", "AdaLN", "AdaLN", "AdaLN", "AdaLN", "AdaLN", "concatenation"),
    "rows": {
        ("cosine", "y+t"): ("0.9001", "0.9852", "0.9905", "0.9779", "0.9934", "0.9946", "0.97917"),
        ("npr", "y+t"): ("10.47", "2.28", "1.60", "2.05", "1.73", "1.43", "50.06"),
        ("cosine", "y"): ("0.7774", "0.5436", "0.8540", "0.7166", "0.6853", "0.5194", "0.00165"),
        ("npr", "y"): ("70.14", "37.43", "36.75", "36.42", "43.67", "41.60", "63.52"),
    },
}

# Table 5 (text / video conditions): superscript 1 = AdaLN, 3 = cross-attention (AudioLDM).
TABLE5 = {
    "caption": "Separate timestep (t) and conditions (y): PR in learned conditional embeddings of "
               "state-of-the-art models on text or video-conditioned generation.",
    "columns": ("X-MDPT-L", "X-MDPT-B", "X-MDPT-S", "SD3.0 (2B)", "SD3.0 (8B)", "MDSGen", "AudioLDM"),
    "conditioning": ("AdaLN", "AdaLN", "AdaLN", "AdaLN", "AdaLN", "AdaLN", "cross-attention"),
    "rows": {
        ("cosine", "y+t"): ("0.9998", "0.99992", "0.9995", "0.9962", "0.9995", "0.9999", "0.9828"),
        ("npr", "y+t"): ("48.42", "37.59", "53.41", "54.79", "26.67", "13.57", "8.62"),
        ("cosine", "y"): ("0.9862", "0.9909", "0.9492", "0.9949", "0.9937", "0.9918", "0.1406"),
        ("npr", "y"): ("20.68", "29.75", "37.51", "52.39", "24.25", "9.98", "63.09"),
    },
}

# Table 2: REPA pruned (d = 1152). (prune, threshold as printed, removed dims as printed, FID, IS, CLIP).
TABLE2 = {
    "caption": "Performance and semantic metrics under sparsification. t_i: prune every step, t_0: prune only "
               "at start, t_{n-k,n}: prune during last k steps.",
    "model": "REPA",
    "rows": (
        ("Tail", "Baseline (REPA)", "0/1152 (0%)", "7.1694", "176.02", "29.746"),
        ("Tail", "τ = 0.01 (t_i)", "448/1152 (38.94%)", "7.2143", "171.99", "29.737"),
        ("Tail", "τ = 0.01 (t_0)", "448/1152 (38.94%)", "7.1690", "175.97", "29.807"),
        ("Tail", "τ = 0.01 (t_{n-k,n})", "448/1152 (38.94%)", "7.1598", "175.49", "29.805"),
        ("Tail", "τ = 0.02 (t_i)", "762/1152 (66.21%)", "9.2202", "125.15", "29.221"),
        ("Tail", "τ = 0.05 (t_i)", "1110/1152 (96.41%)", "56.2308", "20.47", "22.177"),
        ("Tail", "τ = 5.0 (t_i)", "1149/1152 (99.80%)", "356.135", "1.77", "21.922"),
        ("Head", "τ = 5.0 (t_i)", "2/1152 (0.20%)", "7.8478", "164.15", "29.555"),
        ("Head", "τ = 1.0 (t_i)", "8/1152 (0.69%)", "523.7637", "1.95", "22.690"),
    ),
}
