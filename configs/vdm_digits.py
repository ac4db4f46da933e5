"""VDM on the 8x8 digits that ship with scikit-learn: the default, runs on a laptop CPU.

  python launch.py --config=configs/vdm_digits.py --workdir=/tmp/vdm_digits

17 grey levels (vocab_size=17). A 2-block, 32-channel UNet (50 ms a step on 2
CPU cores) trained for 3,000 steps, about 3 minutes; the measured test bits/dim
(EMA parameters) and wall time are in NOTES.md.
"""

from configs import default


def get_config():
  config = default.get_default_config()
  config.model.schedule = "learned_net"
  config.model.schedule_features = 64
  config.model.gamma_min = -10.0      # 17 bins are 0.12 apart: gamma_0 ~ -10 is plenty.
  config.model.ch = 32
  config.model.n_blocks = 2
  config.model.dropout = 0.0
  config.model.fourier_exponents = (3, 4)
  config.training.batch_size = 64
  config.training.num_train_steps = 3000
  config.training.log_every = 100
  config.training.save_every = 1000
  config.training.ema_rate = 0.995
  config.optimizer.learning_rate = 1e-3
  config.eval.batch_size = 100
  config.sampling.num_samples = 64
  config.sampling.num_steps = 200
  config.compression.num_steps = 50
  config.compression.latent_precision = 1
  return config
