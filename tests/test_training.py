import numpy as np
import pytest

from s2s_keras.config import preset
from s2s_keras.training import learning_rate_schedule


def test_halving_schedule_is_constant_then_halves_every_interval():
    train = preset("sutskever").override(["train.learning_rate=0.8", "train.halving_start_epoch=5",
                                          "train.halving_every_epochs=0.5", "train.epochs=8"]).train
    schedule = learning_rate_schedule(train, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 49, 50, 54, 55, 60, 79)]
    # 50 updates = 5 epochs done: halved from update 50 on, then after every 5 more.
    np.testing.assert_allclose(rates, [0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.8 / 2 ** 6])


@pytest.mark.parametrize("name", ["cosine", "constant"])
def test_other_schedules(name):
    train = preset("small").override([f"train.lr_schedule={name}", "train.epochs=2"]).train
    schedule = learning_rate_schedule(train, steps_per_epoch=10)
    if name == "constant":
        assert schedule == train.learning_rate
    else:
        assert float(schedule(0)) == pytest.approx(train.learning_rate)
        assert float(schedule(20)) == pytest.approx(0.05 * train.learning_rate)


def test_mixed_float16_trains_with_loss_scaling_and_float32_logits():
    import keras
    import tensorflow as tf

    from s2s_keras.training import build_model, compile_model

    config = preset("tiny").override(["train.precision=mixed_float16", "model.attention=luong_general"])
    model = build_model(config, list("abcdef"), ["X", "Y", "Z"])
    compile_model(model, config, steps_per_epoch=1)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.attention_decoder.compute_dtype == "float16"
    inputs = {"source_ids": tf.constant([[4, 5, 0]]), "target_in_ids": tf.constant([[2, 4]])}
    history = model.fit(inputs, tf.constant([[4, 3]]), epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert model(inputs).dtype == tf.float32
