"""Sources: everything that reads a user's file or folder, and nothing that samples.

One adapter per kind of source behind ``dtviz.sources.base.Source`` (native DiT-family checkpoints, diffusers
DiT and text-to-image pipelines, embedding matrices, trajectories); ``loading.load`` picks the adapter.
Around them: safe reading of weights (``checkpoint``: ``weights_only=True``, one allow-list), the input
budgets (``budgets``), families and their time conventions (``families``), prompt lists, release configs,
the Hugging Face cache, decoders found beside a checkpoint (``vae``, ``vavae``) and a pipeline's scheduler
(``schedulers``).

Imports: dtviz.errors, dtviz.reference, dtviz.models and this wing only.
"""
