//! What every tool shares: reading its arguments (a wrong one is named in a
//! tool error the model can act on), answering with structured content plus
//! a short text, failing with a tool error, and what the HTTP request says
//! about the caller (the read-only token, the address it used).

use std::borrow::Cow;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::{IntoCallToolResult, ToolCallContext};
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use rmcp::schemars::{JsonSchema, Schema, SchemaGenerator};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::auth::ReadOnlyToken;
use crate::api::ApiError;
use crate::storage::reader::QueryError;

/// A tool's arguments. Like rmcp's own `Parameters`, but a value that does
/// not fit names the argument (`limit: invalid type: string "x", expected
/// usize`), so the model can fix its call. rmcp turns the error into a tool
/// result with `isError` (the prefix below is how it recognises one).
pub struct Parameters<P>(pub P);

const ARGUMENT_ERROR: &str = "failed to deserialize parameters:";

impl<P: JsonSchema> JsonSchema for Parameters<P> {
    fn schema_name() -> Cow<'static, str> {
        P::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        P::json_schema(generator)
    }
}

impl<S, P: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<P> {
    fn from_context_part(context: &mut ToolCallContext<S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        serde_path_to_error::deserialize(serde_json::Value::Object(arguments))
            .map(Parameters)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = if path == "." {
                    e.into_inner().to_string()
                } else {
                    format!("argument `{path}`: {}", e.into_inner())
                };
                ErrorData::invalid_params(format!("{ARGUMENT_ERROR} {message}"), None)
            })
    }
}

/// A tool's answer: `data` as `structuredContent` (the tool lists its schema)
/// and `text` for the model to read.
pub struct Answer<T> {
    pub data: T,
    pub text: String,
}

impl<T: Serialize> IntoCallToolResult for Answer<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        let value = serde_json::to_value(&self.data)
            .map_err(|e| ErrorData::internal_error(format!("serialising the answer: {e}"), None))?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(self.text)]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

/// A failure the model should read: a tool result with `isError`, never a
/// protocol error (clients hide those from the model).
#[derive(Debug)]
pub struct ToolError(pub String);

impl ToolError {
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError(message.into())
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(self.0)]).into())
    }
}

impl From<QueryError> for ToolError {
    fn from(e: QueryError) -> ToolError {
        ToolError(e.to_string())
    }
}

/// REST's parameter checks are reused (one meaning per filter); their
/// messages name the parameter, which is the tool's argument of that name.
impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> ToolError {
        ToolError(e.message)
    }
}

pub type ToolResult<T> = Result<Answer<T>, ToolError>;

/// The HTTP request a tool call came in.
fn parts(ctx: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    ctx.extensions.get::<axum::http::request::Parts>()
}

/// True when the call was made with the read-only token.
pub fn read_only(ctx: &RequestContext<RoleServer>) -> bool {
    parts(ctx).is_some_and(|p| p.extensions.get::<ReadOnlyToken>().is_some())
}

/// `http://HOST` as the client reached qyl (its `Host` header), so links
/// work through Docker's port mapping or a hostname; `fallback` otherwise.
pub fn dashboard_base(ctx: &RequestContext<RoleServer>, fallback: &str) -> String {
    parts(ctx)
        .and_then(|p| p.headers.get(axum::http::header::HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| fallback.to_string())
}

/// Arguments as REST query pairs, so the REST parsers read them.
#[derive(Default)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    pub fn add(&mut self, key: &str, value: Option<impl ToString>) -> &mut Pairs {
        if let Some(v) = value {
            self.0.push((key.to_string(), v.to_string()));
        }
        self
    }

    pub fn params(self) -> crate::api::params::Params {
        crate::api::params::Params::new(self.0)
    }
}
