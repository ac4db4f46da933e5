"""The tiny VDM, class conditional, on the tfds fixture committed in tests/data/tfds.

  python launch.py --config=configs/vdm_tfds_fixture.py --workdir=/tmp/vdm_tfds_fixture

The data path is CIFAR-10's (`data.name = 'tfds'`, read by `tfds.data_source`
without TensorFlow); only `tfds_name` and `data_dir` differ from
configs/vdm_cifar10.py. `vdm_test_patterns` holds 400 train / 100 test 32x32x3
uint8 images of 10 pattern classes (tests/data/make_tfds_fixture.py builds it).
"""

import os

from configs import vdm_tiny

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "data", "tfds")


def get_config():
  config = vdm_tiny.get_config()
  config.data.name = "tfds"
  config.data.tfds_name = "vdm_test_patterns"
  config.data.data_dir = FIXTURE_DIR
  config.data.image_shape = (32, 32, 3)
  config.data.vocab_size = 256
  config.data.num_classes = 10
  config.model.class_conditional = True
  # 256 levels, as CIFAR-10: the default gamma_min and Fourier features
  # (vdm_tiny's -10 and (3, 4) suit the digits' 17 levels).
  config.model.gamma_min = -13.3
  config.model.fourier_exponents = (7, 8)
  return config
