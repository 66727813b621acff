//! `ckca:`: CKCA's distillation from the previous checkpoint.

use super::check::{non_negative, positive};
use super::error::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CkcaSection {
    /// `λ_f`, the weight of FeatReg `mean_d ‖h_s − h_T‖²` on the pooled features.
    pub feat_weight: f32,
    /// `λ_kd`, the weight of AdaKD `w(x)·τ²·KL(p_T^τ ‖ p_s^τ)`.
    pub kd_weight: f32,
    /// `τ`.
    pub temperature: f32,
    pub kd_weighting: KdWeighting,
}

/// AdaKD's per-sample weight `w(x)`, never differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KdWeighting {
    /// `p_T(y|x)`, the teacher's probability of the label.
    TeacherProb,
    /// `1[teacher correct]`.
    TeacherCorrect,
    /// One weight for the batch, `CE_T / (CE_T + CE_s)`.
    Batch,
}

impl Default for CkcaSection {
    fn default() -> CkcaSection {
        CkcaSection { feat_weight: 1.0, kd_weight: 1.0, temperature: 2.0, kd_weighting: KdWeighting::TeacherProb }
    }
}

impl CkcaSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        positive("ckca.temperature", self.temperature as f64)?;
        non_negative("ckca.feat_weight", self.feat_weight as f64)?;
        non_negative("ckca.kd_weight", self.kd_weight as f64)
    }
}
