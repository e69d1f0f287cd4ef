"""Time-series forecasting: RNN-family models (LSTM/GRU, SegRNN) and baselines on ETT, CSV or bundled data."""
