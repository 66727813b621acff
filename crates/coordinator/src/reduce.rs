//! The sum over ranks of one step's gradients and loss sums: in place on the device where the
//! communicator can (NCCL, on the backend's stream), else in one all-reduce of a host copy with
//! the loss sums packed behind the gradients. Training, pre-training and `rekindle bench scaling`
//! all sum through this one type.

use rekindle_comm::{Comm, CommError, Reduce};
use rekindle_model::Vit;
use rekindle_tensor::Backend;

/// The host copy of the gradients (kept between steps, so a step allocates nothing).
#[derive(Default)]
pub struct GradientSum {
    host: Vec<f32>,
}

impl GradientSum {
    /// Replaces `vit`'s gradients and `sums` with their sums over every rank of `comm`.
    pub fn all_reduce(&mut self, be: &mut dyn Backend, vit: &Vit, sums: &mut [f64], comm: &dyn Comm) -> Result<(), CommError> {
        let n = vit.table.total;
        if let Some(address) = vit.grads_address(be) {
            if comm.all_reduce_device(address, n, Reduce::Sum)? {
                let mut losses: Vec<f32> = sums.iter().map(|&s| s as f32).collect();
                comm.all_reduce(&mut losses, Reduce::Sum)?;
                sums.iter_mut().zip(&losses).for_each(|(s, &l)| *s = l as f64);
                return Ok(());
            }
        }
        self.host.resize(n + sums.len(), 0.0);
        vit.read_grads(be, &mut self.host[..n]);
        self.host[n..].iter_mut().zip(sums.iter()).for_each(|(r, &s)| *r = s as f32);
        comm.all_reduce(&mut self.host, Reduce::Sum)?;
        vit.write_grads(be, &self.host[..n]);
        sums.iter_mut().zip(&self.host[n..]).for_each(|(s, &r)| *s = r as f64);
        Ok(())
    }
}
