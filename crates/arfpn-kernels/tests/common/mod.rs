//! What the convolution tests share.

use arfpn_kernels::Conv2dConfig;

/// A convolution's hyper-parameters, positionally.
pub fn cfg(stride: usize, padding: usize, dilation: usize, groups: usize) -> Conv2dConfig {
    Conv2dConfig {
        stride,
        padding,
        dilation,
        groups,
    }
}
