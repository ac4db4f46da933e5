"""VDM on downsampled ImageNet 32x32 (VDM Table 1: 3.72 bpd).

  tfds build downsampled_imagenet/32x32 --file_format=array_record --data_dir=DIR  # README
  python launch.py --config=configs/vdm_imagenet32.py --workdir=/ckpt/vdm_in32 \\
      --config.data.data_dir=DIR

Same network family as CIFAR-10 with 256 channels (google-research/vdm
configs/imagenet32.py): 32 blocks, dropout 0.1, learnable linear schedule,
batch 128, lr 2e-4.
"""

from configs import default


def get_config():
  config = default.get_default_config()
  config.data.name = "tfds"
  config.data.tfds_name = "downsampled_imagenet/32x32"
  config.data.test_split = "validation"
  config.data.image_shape = (32, 32, 3)
  config.data.vocab_size = 256
  config.data.num_classes = 0
  config.model.schedule = "learned_linear"
  config.model.ch = 256
  config.model.n_blocks = 32
  config.model.dropout = 0.1
  config.eval.every_steps = 50_000
  config.eval.max_batches = 100
  config.training.save_every = 10_000
  config.training.log_every = 1000
  return config
