//! API errors and their wire form.
//!
//! Every failure the emulator reports leaves as a `meta.k8s.io/v1` `Status` object with the
//! same `reason`, `code`, `message` and `details` the real API server would use, so that
//! `kube::Error::Api` and kubectl parse them exactly as they would against a cluster.

use serde_json::{Value, json};

/// Identifies the resource an error is about, as the real server names it in messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// API group ("" for the core group).
    pub group: String,
    /// Plural resource name, e.g. `configmaps`.
    pub resource: String,
    /// Kind, e.g. `ConfigMap` (used by `Invalid` messages).
    pub kind: String,
    /// Object name, empty for collections.
    pub name: String,
}

impl Subject {
    /// `resource.group` as the real server prints it (`configmaps` for core types).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `Kind.group` as the real server prints it in `Invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// One field-level problem inside an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason such as `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// Field path, e.g. `spec.duration`.
    pub field: String,
    /// Message without the field prefix, e.g. `Required value`.
    pub message: String,
}

impl Cause {
    /// Builds a cause.
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The cause as the real server prints it inside a Status message: `field: message`.
    pub fn render(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Every error the emulator can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 Forbidden, with the full message already formatted.
    #[error("{message}")]
    Forbidden {
        /// What was refused.
        subject: Box<Subject>,
        /// Full message.
        message: String,
    },
    /// 404 NotFound for an object.
    #[error("{} \"{}\" not found", .0.qualified_resource(), .0.name)]
    NotFound(Box<Subject>),
    /// 404 for a path that names no resource at all.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 NotAcceptable.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409 AlreadyExists.
    #[error("{} \"{}\" already exists", .0.qualified_resource(), .0.name)]
    AlreadyExists(Box<Subject>),
    /// 409 Conflict with a stale resourceVersion (or failed precondition).
    #[error(
        "Operation cannot be fulfilled on {} \"{}\": {message}",
        .subject.qualified_resource(),
        .subject.name
    )]
    Conflict {
        /// The object.
        subject: Box<Subject>,
        /// Why.
        message: String,
    },
    /// 409 Conflict from server-side apply field ownership.
    #[error("{message}")]
    ApplyConflict {
        /// The object.
        subject: Box<Subject>,
        /// Full message (`Apply failed with N conflicts: ...`).
        message: String,
        /// One cause per conflicting field.
        causes: Vec<Cause>,
    },
    /// 410 Gone (reason Expired) for a resourceVersion older than the kept history.
    #[error("{0}")]
    Gone(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 Invalid with field causes.
    #[error("{}", invalid_message(.subject, .causes))]
    Invalid {
        /// The object.
        subject: Box<Subject>,
        /// Every bad field.
        causes: Vec<Cause>,
    },
    /// 403 Forbidden because the namespace is terminating.
    #[error(
        "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
        .subject.qualified_resource(),
        .subject.name
    )]
    NamespaceTerminating {
        /// The object.
        subject: Box<Subject>,
        /// The namespace.
        namespace: String,
    },
    /// 500 InternalError.
    #[error("{0}")]
    Internal(String),
}

fn invalid_message(subject: &Subject, causes: &[Cause]) -> String {
    let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
    let body = if rendered.len() == 1 {
        rendered.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", rendered.join(", "))
    };
    format!(
        "{} \"{}\" is invalid: {}",
        subject.qualified_kind(),
        subject.name,
        body
    )
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden { .. } | ApiError::NamespaceTerminating { .. } => 403,
            ApiError::NotFound(_) | ApiError::NoRoute => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::AlreadyExists(_)
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Gone(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `reason` field of the Status.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } | ApiError::NamespaceTerminating { .. } => "Forbidden",
            ApiError::NotFound(_) | ApiError::NoRoute => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Gone(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let subject_details = |s: &Subject, kind: &str| {
            let mut d = serde_json::Map::new();
            if !s.name.is_empty() {
                d.insert("name".into(), json!(s.name));
            }
            if !s.group.is_empty() {
                d.insert("group".into(), json!(s.group));
            }
            d.insert("kind".into(), json!(kind));
            d
        };
        let causes_json = |causes: &[Cause]| -> Value {
            causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect()
        };
        match self {
            ApiError::NotFound(s)
            | ApiError::AlreadyExists(s)
            | ApiError::Conflict { subject: s, .. }
            | ApiError::Forbidden { subject: s, .. }
            | ApiError::NamespaceTerminating { subject: s, .. } => {
                Some(Value::Object(subject_details(s, &s.resource)))
            }
            ApiError::ApplyConflict {
                subject, causes, ..
            } => {
                let mut d = subject_details(subject, &subject.resource);
                d.insert("causes".into(), causes_json(causes));
                Some(Value::Object(d))
            }
            ApiError::Invalid { subject, causes } => {
                let mut d = subject_details(subject, &subject.kind);
                d.insert("causes".into(), causes_json(causes));
                Some(Value::Object(d))
            }
            _ => None,
        }
    }

    /// The error as a `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let (Some(details), Some(obj)) = (self.details(), status.as_object_mut()) {
            obj.insert("details".into(), details);
        }
        status
    }
}

/// Result alias for request handling.
pub type ApiResult<T> = Result<T, ApiError>;
