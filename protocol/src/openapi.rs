//! OpenAPI schemas of the types whose JSON form is written by hand (a string, not their fields).

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::{Base64Bytes, ResultId};

impl PartialSchema for Base64Bytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_encoding("base64")
            .description(Some("Bytes as one standard (padded) base64 string."))
            .into()
    }
}

impl ToSchema for Base64Bytes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Base64Bytes")
    }
}

impl PartialSchema for ResultId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[0-9]+\.[0-9]+$"))
            .description(Some(
                "One replica of a unit, written `UNIT.N` (`42.1`: the second replica of unit 42).",
            ))
            .examples(["42.1"])
            .into()
    }
}

impl ToSchema for ResultId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ResultId")
    }
}
