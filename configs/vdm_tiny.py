"""A tiny VDM on the digits for the tests: seconds per run on one CPU core.

  python launch.py --config=configs/vdm_tiny.py --workdir=/tmp/vdm_tiny
"""

from configs import default


def get_config():
  config = default.get_default_config()
  config.model.schedule = "learned_net"
  config.model.schedule_features = 8
  config.model.gamma_min = -10.0
  config.model.ch = 8
  config.model.n_blocks = 1
  config.model.dropout = 0.0
  config.model.fourier_exponents = (3, 4)
  config.training.batch_size = 8
  config.training.num_train_steps = 6
  config.training.log_every = 1
  config.training.save_every = 3
  config.training.ema_rate = 0.9
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 2
  config.eval.batch_size = 100
  config.eval.num_t_draws = 1
  config.sampling.num_samples = 4
  config.sampling.num_steps = 5
  config.compression.num_steps = 5
  return config
