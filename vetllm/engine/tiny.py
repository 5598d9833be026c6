"""The CPU default model: a byte-level BPE tokenizer trained on the notes, and a tiny LLaMA.

Nothing is downloaded. The tokenizer is trained on the training notes and responses plus the
package's clinical vocabulary (so ordinary clinical words stay whole even when the user's notes
lack them), and every byte of any free text a user types has a token (byte-level: nothing
becomes "unknown"); each catalogue label is one added token, so "Diagnosed conditions:
198462004" is a handful of tokens and a label can never be half-generated. The model is `LlamaForCausalLM` built from a
`LlamaConfig`: the same architecture and the same Trainer path as the 7B presets, only smaller.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from vetllm.config import TrainConfig

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = [PAD, BOS, EOS]


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, labels: Iterable[str] = ()
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, with each label as one added token.

    Args:
        texts: prompts and responses of the training data (what the model will read and write).
        vocab_size: target size including the 256 byte symbols and the special tokens.
        labels: catalogue labels ("198462004", "local:foot_rot") to keep as single tokens.
    """
    tokenizer = Tokenizer(models.BPE())
    # add_prefix_space=False: a prompt and its answer are tokenized exactly as at inference time.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Clinical vocabulary the package knows (sign phrases and synonyms, findings, breeds,
    # disease names) joins the notes: words absent from the user's notes stay whole tokens
    # instead of shattering into bytes ("goat" -> g, o, at on template-only notes, measured).
    from vetllm.data.synth_mix import clinical_vocabulary_texts

    corpus = [*texts, *clinical_vocabulary_texts()]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    # single_word: "1679004" inside a longer digit string stays digits, not the label token.
    tokenizer.add_tokens(
        [AddedToken(label, single_word=True, normalized=False) for label in dict.fromkeys(labels)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A randomly initialised LLaMA sized by the config's `tiny_*` fields (seeded by the caller)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny_hidden_size,
        intermediate_size=cfg.tiny_intermediate_size,
        num_hidden_layers=cfg.tiny_layers,
        num_attention_heads=cfg.tiny_heads,
        num_key_value_heads=cfg.tiny_heads,
        max_position_embeddings=max(cfg.max_length, 64) + cfg.max_new_tokens,
        tie_word_embeddings=True,  # halves the parameters; the vocabulary dominates at this size
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        rms_norm_eps=1e-5,
    )
    return LlamaForCausalLM(config)
