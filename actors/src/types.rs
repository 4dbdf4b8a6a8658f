//! The document types in force: those of the configuration, overlaid by
//! the ones created, changed or deleted over the API (kept in SQLite, so
//! they win over `config.toml` across restarts). Shared by the Classify and
//! Enrich workers through a slot swapped whole after each change.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::classifier::rules::RulesClassifier;
use crate::config::TypeConfig;
use crate::fields::common_fields;
use crate::model::{FieldSpec, Kind};

pub struct Types {
    pub list: Vec<TypeConfig>,
    /// Per type: "config" or "api".
    pub origin: BTreeMap<String, &'static str>,
    /// The rules the user wrote (in config or over the API): they beat the
    /// learned model.
    pub rules: RulesClassifier,
    /// The shipped default types' rules, where left as shipped: priors,
    /// which type documents until the user's corrections have taught the
    /// model better (see [`crate::classifier::classify`]).
    pub priors: RulesClassifier,
}

pub type TypesSlot = Arc<RwLock<Arc<Types>>>;

/// Reads the slot's current types.
pub fn current(slot: &TypesSlot) -> Arc<Types> {
    slot.read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Types {
    /// The configured types with the API's changes applied (a `None`
    /// definition deletes).
    pub fn build(
        configured: &[TypeConfig],
        overlays: &[(String, Option<String>)],
    ) -> anyhow::Result<Types> {
        let mut list: Vec<TypeConfig> = configured.to_vec();
        let mut origin: BTreeMap<String, &'static str> =
            list.iter().map(|t| (t.name.clone(), "config")).collect();
        for (name, def) in overlays {
            list.retain(|t| &t.name != name);
            origin.remove(name);
            if let Some(def) = def {
                let t: TypeConfig = serde_json::from_str(def)
                    .map_err(|e| anyhow::anyhow!("stored type {name:?} is unreadable: {e}"))?;
                origin.insert(name.clone(), "api");
                list.push(t);
            }
        }
        let shipped = crate::config::default_types();
        let (priors, own): (Vec<TypeConfig>, Vec<TypeConfig>) = list
            .iter()
            .cloned()
            .partition(|t| origin.get(&t.name) == Some(&"config") && shipped.contains(t));
        Ok(Types {
            rules: RulesClassifier::new(&own)?,
            priors: RulesClassifier::new(&priors)?,
            list,
            origin,
        })
    }

    pub fn get(&self, name: &str) -> Option<&TypeConfig> {
        self.list.iter().find(|t| t.name == name)
    }

    /// The kind of a field name: from the types' schemas or the common
    /// fields; anything else is text.
    pub fn field_kind(&self, name: &str) -> Kind {
        let common = common_fields();
        self.list
            .iter()
            .flat_map(|t| t.fields.iter())
            .chain(common.iter())
            .find(|f| f.name == name)
            .map_or(Kind::Text, |f| f.kind)
    }

    /// The fields looked for in a document of the type: the type's own,
    /// then the common ones.
    pub fn schema(&self, doc_type: Option<&str>) -> Vec<FieldSpec> {
        let mut specs: Vec<FieldSpec> = doc_type
            .and_then(|t| self.get(t))
            .map(|t| t.fields.clone())
            .unwrap_or_default();
        specs.extend(common_fields());
        specs
    }
}

/// What is wrong with a type definition, if anything.
pub fn check(t: &TypeConfig) -> Result<(), String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if !name_ok(&t.name) {
        return Err(format!(
            "name {:?}: 1 to 64 lower-case letters, digits, '_' or '-'",
            t.name
        ));
    }
    if t.description.len() > 1000 {
        return Err("description: at most 1000 characters".into());
    }
    for p in &t.patterns {
        regex::Regex::new(p)
            .map_err(|e| format!("patterns: {p:?} is not a regular expression: {e}"))?;
    }
    let mut seen = std::collections::HashSet::new();
    for f in &t.fields {
        if !name_ok(&f.name) || f.name.contains('-') {
            return Err(format!(
                "fields: {:?} is not a field name (lower-case letters, digits and _)",
                f.name
            ));
        }
        if !seen.insert(&f.name) {
            return Err(format!("fields: {:?} appears twice", f.name));
        }
    }
    Ok(())
}
