import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.manual_seed(0)
