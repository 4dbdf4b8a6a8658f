//! The cheap stages as plain functions: a document's built-in type (rules,
//! then the learned model) and its built-in fields (rules, and an embedded
//! e-invoice), and whether the LLM is to be asked for either.
//!
//! Shared by the Classify and Enrich workers and by the Extract job: when
//! no LLM is asked for a document, the Extract job runs both right after
//! extraction and the Catalog writes the three stages in one transaction
//! (DESIGN rule 2: cheap, CPU-only stages may share a durable step). With
//! an LLM, Classify and Enrich stay durable steps of their own.

use std::sync::Arc;

use serde_json::Value;

use crate::classifier::bayes::Vector;
use crate::classifier::{self, ModelSlot, Trained};
use crate::embed::Embedder;
use crate::fields::templates::{self, Template, TemplatesSlot};
use crate::fields::{self, Context};
use crate::llm::Llm;
use crate::model::{Classification, DocJob, Extracted, FieldSpec, Found};
use crate::routes::StageOutput;
use crate::types::{self, Types, TypesSlot};

/// What the cheap stages read: the types and model in force, the LLM.
pub struct Analyzer {
    pub types: TypesSlot,
    pub model: ModelSlot,
    /// The built-in embedder, whose vectors the learned model reads beside
    /// the words (None: words alone).
    pub embedder: Option<Arc<Embedder>>,
    /// Each workspace's field templates.
    pub templates: TemplatesSlot,
    pub review_threshold: f32,
    pub llm: Option<Arc<Llm>>,
}

/// What the field rules read besides the text, from what extraction found.
pub struct Metadata<'a> {
    pub language: Option<&'a str>,
    /// The format's own fields (an e-mail's From, an embedded e-invoice).
    pub fields: Option<&'a Value>,
    /// The text as laid out on the page, where the reader kept it: the
    /// field rules and templates read it instead of the flowing text.
    pub layout: Option<&'a str>,
}

impl Analyzer {
    pub fn types(&self) -> Arc<Types> {
        types::current(&self.types)
    }

    /// The workspace's learned model, if it has one.
    pub fn model(&self, workspace: &str) -> Option<Arc<Trained>> {
        classifier::current(&self.model, workspace)
    }

    /// The built-in type: the user's rules, else the learned model weighed
    /// against the shipped default types' rules (see
    /// [`classifier::classify`]).
    pub fn built_in_type(
        &self,
        types: &Types,
        model: Option<&Trained>,
        title: &str,
        text: &str,
    ) -> Classification {
        let model = model.map(|t| &t.model);
        // The vector only when the model reads one (it costs a pass over
        // the start of the text, ~1 ms for 20,000 characters).
        let vector = model
            .filter(|m| m.embedder().is_some())
            .and_then(|_| classifier::vector_of(self.embedder.as_deref(), title, text));
        let id = self.embedder.as_deref().map_or("", Embedder::id);
        classifier::classify(
            &types.rules,
            &types.priors,
            model,
            vector.as_deref().map(|values| Vector {
                embedder: id,
                values,
            }),
            self.review_threshold,
            title,
            text,
        )
    }

    /// The type names the LLM would choose from, if it is to be asked for
    /// this document's type (else empty).
    pub fn llm_type_names(
        &self,
        types: &Types,
        model: Option<&Trained>,
        built_in: &Classification,
    ) -> Vec<(String, String)> {
        if !self.llm.as_ref().is_some_and(|l| l.config().classify) {
            return Vec::new(); // no names to build on the path without an LLM
        }
        let names = classifier::llm_types(&types.list, model.map(|t| &t.model));
        if classifier::wants_llm(self.llm.as_deref(), built_in, &names) {
            names
        } else {
            Vec::new()
        }
    }

    /// The type's own fields, if the LLM is to be asked for them.
    pub fn llm_field_specs(&self, types: &Types, doc_type: Option<&str>) -> Vec<FieldSpec> {
        if !self.llm.as_ref().is_some_and(|l| l.config().extract) {
            return Vec::new();
        }
        doc_type
            .and_then(|t| types.get(t))
            .map(|t| t.fields.clone())
            .unwrap_or_default()
    }

    /// The built-in fields of a document of this type in this workspace.
    pub fn built_in_fields(
        &self,
        types: &Types,
        doc_type: Option<&str>,
        text: &str,
        meta: &Metadata<'_>,
        workspace: &str,
    ) -> Vec<Found> {
        let specs = types.schema(doc_type);
        let templates = templates::current(&self.templates, workspace);
        built_in_fields(&specs, text, meta, templates.as_deref().map_or(&[], |t| t))
    }

    /// The stages after extraction that need no LLM for this document, run
    /// now: classified, then enriched. Stops before the first stage the LLM
    /// is to be asked for (that stage's worker asks it).
    pub fn cheap_stages(&self, job: &DocJob, out: &Extracted) -> Vec<StageOutput> {
        let (types, model) = (self.types(), self.model(&job.workspace));
        let title = job.title.as_deref().or(out.title.as_deref()).unwrap_or("");
        let class = self.built_in_type(&types, model.as_deref(), title, &out.text);
        if !self
            .llm_type_names(&types, model.as_deref(), &class)
            .is_empty()
        {
            return Vec::new();
        }
        // A type the uploader set stays (the Catalog keeps it), and its
        // fields are the ones looked for.
        let doc_type = job.user_doc_type.clone().or_else(|| class.doc_type.clone());
        let mut stages = vec![StageOutput::Classified(class)];
        if !self.llm_field_specs(&types, doc_type.as_deref()).is_empty() {
            return stages;
        }
        let meta = Metadata {
            language: out.language.as_deref(),
            fields: out.fields.as_ref(),
            layout: out.layout.as_deref(),
        };
        let fields = self.built_in_fields(
            &types,
            doc_type.as_deref(),
            &out.text,
            &meta,
            &job.workspace,
        );
        stages.push(StageOutput::Enriched {
            fields,
            needs_llm: false,
        });
        stages
    }
}

/// The field rules' values, with the issuer's templates' values and then
/// an embedded e-invoice's in their place; both read the page's layout
/// where there is one.
pub fn built_in_fields(
    specs: &[FieldSpec],
    text: &str,
    meta: &Metadata<'_>,
    templates: &[Template],
) -> Vec<Found> {
    let sender = meta.fields.and_then(|m| match &m["from"] {
        Value::Array(a) => a.first().and_then(|v| v.as_str()),
        Value::String(s) => Some(s.as_str()),
        _ => None,
    });
    let cx = Context {
        language: meta.language,
        sender,
    };
    let text = meta.layout.unwrap_or(text);
    let found = fields::extract(text, specs, &cx);
    let found = templates::with_templates(found, templates, text, &cx);
    match meta.fields.and_then(|m| m.get("einvoice")) {
        Some(e) => fields::with_einvoice(found, e, specs),
        None => found,
    }
}
