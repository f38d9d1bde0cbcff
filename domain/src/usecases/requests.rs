//! The JSON bodies of the HTTP API's write requests, as the API parses them (unknown keys
//! refused), and their conversion into the use cases' inputs. The API (`ltf-producers`)
//! parses every body into one of these; the `api_bodies` fuzz target ([`crate::fuzzing`])
//! parses the same types and runs the checks the use cases make before the database.
//! With the `openapi` feature each derives its OpenAPI schema, named after the type.

use std::collections::BTreeMap;

use ltf_schemas::Fields;
use serde::{Deserialize, Serialize};

use crate::connections::OAuthGrant;
use crate::store::tables::{FieldDef, FieldType};
use crate::usecases::{
    AuthenticateConnectionInput, CreateFormInput, CreateMultipleRecordsInput, CreateRecordInput, CreateTableInput,
    DeleteMultipleRecordsInput, RecordPatch, RecordRef, SubmitFormInput, UpdateMultipleRecordsInput, UpdateRecordInput,
};

/// One field definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldDefView {
    /// The field name, the key in a record's fields.
    pub name: String,
    /// `text`, `number`, `integer`, `boolean`, `date`, `json` or `link`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "text"))]
    pub field_type: FieldType,
}

impl From<FieldDef> for FieldDefView {
    fn from(f: FieldDef) -> FieldDefView {
        FieldDefView { name: f.name, field_type: f.field_type }
    }
}

impl From<FieldDefView> for FieldDef {
    fn from(f: FieldDefView) -> FieldDef {
        FieldDef::new(f.name, f.field_type)
    }
}

/// Body of `POST /v1/tables`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTableRequest {
    /// The table id (at most 255 characters, no control characters); `tbl_<uuid>` when absent.
    pub id: Option<String>,
    /// The display name.
    pub name: String,
    /// The field definitions, in order; names unique, at most 200.
    pub fields: Vec<FieldDefView>,
}

impl CreateTableRequest {
    /// The input of CreateTable.
    pub fn input(self) -> CreateTableInput {
        CreateTableInput { id: self.id, name: self.name, fields: self.fields.into_iter().map(FieldDef::from).collect() }
    }
}

/// Body of `POST /v1/forms`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateFormRequest {
    /// The form id (at most 255 characters, no control characters); `frm_<uuid>` when absent.
    pub id: Option<String>,
    /// The display name.
    pub name: String,
    /// The table its submissions become records of, if any.
    pub table_id: Option<String>,
    /// The field definitions a submission is validated against; names unique.
    #[serde(default)]
    pub fields: Vec<FieldDefView>,
    /// Form field name → field of `tableId` its value is stored in (compatible types).
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
}

impl CreateFormRequest {
    /// The input of CreateForm.
    pub fn input(self) -> CreateFormInput {
        CreateFormInput {
            id: self.id,
            name: self.name,
            table_id: self.table_id,
            fields: self.fields.into_iter().map(FieldDef::from).collect(),
            field_mapping: self.field_mapping,
        }
    }
}

/// Body of `POST /v1/forms/{formId}/submissions`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitFormRequest {
    /// The submitted values; every key a field of the form, of its type.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Fields,
}

impl SubmitFormRequest {
    /// The input of SubmitForm for form `form_id` (the path's).
    pub fn input(self, form_id: String) -> SubmitFormInput {
        SubmitFormInput { form_id, data: self.data }
    }
}

/// Body of `POST /v1/connections`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticateConnectionRequest {
    /// The connection to (re-)authenticate; `conn_<uuid>` when absent (a new connection).
    pub connection_id: Option<String>,
    /// The service, a name configured under `connections.services`.
    pub service: String,
    /// The user who connects; the API key's principal when absent.
    pub user_id: Option<String>,
    /// The OAuth2 grant to exchange.
    #[cfg_attr(feature = "openapi", schema(value_type = GrantDoc))]
    pub grant: OAuthGrant,
}

impl AuthenticateConnectionRequest {
    /// The input of AuthenticateConnection; `principal` (the API key's user) is the user
    /// when the body names none, and the empty string when there is neither.
    pub fn input(self, principal: Option<String>) -> AuthenticateConnectionInput {
        let user_id = self.user_id.or(principal).unwrap_or_default();
        AuthenticateConnectionInput { connection_id: self.connection_id, service: self.service, user_id, grant: self.grant }
    }
}

/// The OAuth2 grant, tagged by `grantType` (for the OpenAPI document).
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "grantType", rename_all = "snake_case")]
pub enum GrantDoc {
    /// An authorization code from the service's redirect.
    #[serde(rename_all = "camelCase")]
    AuthorizationCode {
        /// The code.
        code: String,
        /// The `redirect_uri` of the authorization request, if it had one.
        redirect_uri: Option<String>,
        /// The PKCE code verifier, if the authorization request had a challenge.
        code_verifier: Option<String>,
    },
    /// A refresh token.
    #[serde(rename_all = "camelCase")]
    RefreshToken {
        /// The refresh token.
        refresh_token: String,
        /// Narrower scopes, if any.
        scopes: Option<Vec<String>>,
    },
    /// The deployment's own client credentials.
    #[serde(rename_all = "camelCase")]
    ClientCredentials {
        /// Scopes to ask for, if any.
        scopes: Option<Vec<String>>,
    },
}

/// Body of `POST /v1/tables/{tableId}/records`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRecordRequest {
    /// The field values; every key must be a field of the table, of its type.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
}

impl CreateRecordRequest {
    /// The input of CreateRecord for table `table_id` (the path's).
    pub fn input(self, table_id: String) -> CreateRecordInput {
        CreateRecordInput { table_id, fields: self.fields }
    }
}

/// Body of `POST /v1/tables/{tableId}/records/batch`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRecordsRequest {
    /// The new records, 1 to `max_batch`.
    pub records: Vec<CreateRecordRequest>,
}

impl CreateRecordsRequest {
    /// The input of CreateMultipleRecords for table `table_id` (the path's).
    pub fn input(self, table_id: String) -> CreateMultipleRecordsInput {
        CreateMultipleRecordsInput { table_id, records: self.records.into_iter().map(|r| r.fields).collect() }
    }
}

/// Body of `PATCH /v1/tables/{tableId}/records/{recordId}`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRecordRequest {
    /// The fields to set; `null` removes a field; fields not named keep their value.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
    /// Apply only if the record is at this version (409 otherwise).
    pub expected_version: Option<i64>,
}

impl UpdateRecordRequest {
    /// The input of UpdateRecord for record `record_id` of table `table_id` (the path's).
    pub fn input(self, table_id: String, record_id: String) -> UpdateRecordInput {
        UpdateRecordInput {
            table_id,
            patch: RecordPatch { record_id, fields: self.fields, expected_version: self.expected_version },
        }
    }
}

/// One record's change in `PATCH /v1/tables/{tableId}/records`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordPatchRequest {
    /// The record id.
    pub id: String,
    /// The fields to set; `null` removes a field.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
    /// Apply only if the record is at this version (409 for the whole batch otherwise).
    pub expected_version: Option<i64>,
}

/// Body of `PATCH /v1/tables/{tableId}/records`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRecordsRequest {
    /// The changes, applied in order, 1 to `max_batch`.
    pub records: Vec<RecordPatchRequest>,
}

impl UpdateRecordsRequest {
    /// The input of UpdateMultipleRecords for table `table_id` (the path's).
    pub fn input(self, table_id: String) -> UpdateMultipleRecordsInput {
        let patches = self
            .records
            .into_iter()
            .map(|r| RecordPatch { record_id: r.id, fields: r.fields, expected_version: r.expected_version })
            .collect();
        UpdateMultipleRecordsInput { table_id, patches }
    }
}

/// One record to delete in `POST /v1/tables/{tableId}/records/delete`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordRefRequest {
    /// The record id.
    pub id: String,
    /// Delete only if the record is at this version (409 for the whole batch otherwise).
    pub expected_version: Option<i64>,
}

/// Body of `POST /v1/tables/{tableId}/records/delete`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteRecordsRequest {
    /// The records to delete, 1 to `max_batch`.
    pub records: Vec<RecordRefRequest>,
}

impl DeleteRecordsRequest {
    /// The input of DeleteMultipleRecords for table `table_id` (the path's).
    pub fn input(self, table_id: String) -> DeleteMultipleRecordsInput {
        let records =
            self.records.into_iter().map(|r| RecordRef { record_id: r.id, expected_version: r.expected_version }).collect();
        DeleteMultipleRecordsInput { table_id, records }
    }
}
