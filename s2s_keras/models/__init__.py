from s2s_keras.models.seq2seq import Seq2Seq

__all__ = ["Seq2Seq"]
