//! Researchers' own modules by name: attention modules ([`register_attention`]) and whole
//! backbones ([`register_backbone`]). A configuration names a registered module
//! ([`AttentionKind::Custom`](crate::AttentionKind::Custom),
//! [`CustomBackbone`]) with its parameters as JSON, so that a detector that uses it can be
//! built, saved and loaded again by every program that registers the same name, the
//! workspace's commands included once they are rebuilt with the registration.
//!
//! The registry is process-wide (like `timm`'s model registry): register at the start of
//! `main`, before building or loading. Registering a name again replaces the constructor.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use candle_core::Result;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::attention::AttentionFactory;
use crate::backbone::Backbone;
use crate::error::BackboneError;

/// Makes an attention factory from the JSON parameters a configuration gives.
pub type AttentionConstructor =
    Arc<dyn Fn(&serde_json::Value) -> Result<Box<dyn AttentionFactory>> + Send + Sync>;

/// Builds a backbone from the JSON parameters a configuration gives, its parameters created
/// through the `VarBuilder` (scoped to `backbone.body` in a detector).
pub type BackboneConstructor =
    Arc<dyn Fn(&serde_json::Value, VarBuilder) -> Result<Box<dyn Backbone>> + Send + Sync>;

/// A registered backbone chosen by name, with its parameters (any JSON).
///
/// ```
/// let b: arfpn_backbone::CustomBackbone =
///     serde_json::from_str(r#"{"name": "tiny", "params": {"width": 8}}"#).unwrap();
/// assert_eq!(b.params["width"], 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomBackbone {
    /// The name given to [`register_backbone`].
    pub name: String,
    /// Passed to the constructor as they are (`null` when absent).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl CustomBackbone {
    /// Errors ([`BackboneError::NotRegistered`]) unless the name is registered.
    pub fn check_registered(&self) -> crate::Result<()> {
        backbone(&self.name).map(|_| ())
    }

    /// Builds the registered backbone under `vb`.
    pub fn build(&self, vb: VarBuilder) -> crate::Result<Box<dyn Backbone>> {
        let constructor = backbone(&self.name)?;
        Ok(constructor(&self.params, vb)?)
    }
}

fn attentions() -> &'static RwLock<HashMap<String, AttentionConstructor>> {
    static R: OnceLock<RwLock<HashMap<String, AttentionConstructor>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(HashMap::new()))
}

fn backbones() -> &'static RwLock<HashMap<String, BackboneConstructor>> {
    static R: OnceLock<RwLock<HashMap<String, BackboneConstructor>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Registers an attention module under `name`: `constructor` turns the configuration's
/// `params` into a factory (and may reject them with an error naming the field).
///
/// ```
/// use arfpn_backbone::{register_attention, AttentionKind, AttentionSite, AttentionFactory, Attention, NoAttention};
/// struct Identity;
/// impl AttentionFactory for Identity {
///     fn build(&self, _: &AttentionSite, _: candle_nn::VarBuilder) -> candle_core::Result<Box<dyn Attention>> {
///         Ok(Box::new(NoAttention))
///     }
/// }
/// register_attention("identity", |_params| Ok(Box::new(Identity)));
/// assert!(AttentionKind::custom("identity", serde_json::Value::Null).validate().is_ok());
/// assert!(AttentionKind::custom("unknown", serde_json::Value::Null).validate().is_err());
/// ```
pub fn register_attention<F>(name: impl Into<String>, constructor: F)
where
    F: Fn(&serde_json::Value) -> Result<Box<dyn AttentionFactory>> + Send + Sync + 'static,
{
    let mut r = attentions().write().unwrap_or_else(|e| e.into_inner());
    r.insert(name.into(), Arc::new(constructor));
}

/// Registers a backbone under `name` (see [`CustomBackbone`]). Its
/// [`output_shapes`](Backbone::output_shapes) drive the FPN and the checks of everything
/// after it.
pub fn register_backbone<F>(name: impl Into<String>, constructor: F)
where
    F: Fn(&serde_json::Value, VarBuilder) -> Result<Box<dyn Backbone>> + Send + Sync + 'static,
{
    let mut r = backbones().write().unwrap_or_else(|e| e.into_inner());
    r.insert(name.into(), Arc::new(constructor));
}

/// The names of the registered attention modules, sorted.
pub fn registered_attentions() -> Vec<String> {
    let r = attentions().read().unwrap_or_else(|e| e.into_inner());
    sorted(r.keys())
}

/// The names of the registered backbones, sorted.
pub fn registered_backbones() -> Vec<String> {
    let r = backbones().read().unwrap_or_else(|e| e.into_inner());
    sorted(r.keys())
}

fn sorted<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = names.cloned().collect();
    v.sort();
    v
}

fn listed(v: Vec<String>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The constructor registered under `name` in `registry`, or the error naming what is
/// registered and which function registers (`kind`, `register`).
fn lookup<T: Clone>(
    registry: &RwLock<HashMap<String, T>>,
    name: &str,
    kind: &'static str,
    register: &'static str,
) -> crate::Result<T> {
    let r = registry.read().unwrap_or_else(|e| e.into_inner());
    r.get(name)
        .cloned()
        .ok_or_else(|| BackboneError::NotRegistered {
            kind,
            name: name.to_string(),
            register,
            registered: listed(sorted(r.keys())),
        })
}

pub(crate) fn attention(name: &str) -> crate::Result<AttentionConstructor> {
    lookup(attentions(), name, "attention module", "register_attention")
}

pub(crate) fn backbone(name: &str) -> crate::Result<BackboneConstructor> {
    lookup(backbones(), name, "backbone", "register_backbone")
}
