//! Object and field definitions of the emulated org: what describe reports and what the
//! generator fills. One definition drives both, so describe always matches the data.
//!
//! Built-in names are `&'static str` borrowed through `Cow`; fields an admin adds at run
//! time (`POST /__emulator/schema/{object}/fields`, see [`custom_field`]) own theirs.

use std::borrow::Cow;

/// A field's describe `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Id,
    Reference,
    String,
    TextArea,
    Picklist,
    Email,
    Phone,
    Url,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    /// Compound address, rendered from its component fields.
    Address,
    AnyType,
    /// Structured data as JSON text (describe `json`); Bulk API 2.0 cannot select it.
    Json,
    /// A list of record Ids (describe `junctionidlist`, Task's `TaskWhoIds`): REST writes a
    /// JSON array, Bulk CSV joined text.
    JunctionIdList,
}

impl Kind {
    /// The describe `type` string.
    pub fn describe_type(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::Reference => "reference",
            Kind::String => "string",
            Kind::TextArea => "textarea",
            Kind::Picklist => "picklist",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Url => "url",
            Kind::Boolean => "boolean",
            Kind::Int => "int",
            Kind::Double => "double",
            Kind::Currency => "currency",
            Kind::Percent => "percent",
            Kind::Date => "date",
            Kind::DateTime => "datetime",
            Kind::Address => "address",
            Kind::AnyType => "anyType",
            Kind::Json => "json",
            Kind::JunctionIdList => "junctionidlist",
        }
    }

    /// The describe `soapType` string.
    pub fn soap_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Reference => "tns:ID",
            Kind::Boolean => "xsd:boolean",
            Kind::Int => "xsd:int",
            Kind::Double | Kind::Currency | Kind::Percent => "xsd:double",
            Kind::Date => "xsd:date",
            Kind::DateTime => "xsd:dateTime",
            Kind::Address => "urn:address",
            Kind::AnyType => "xsd:anyType",
            Kind::JunctionIdList => "urn:JunctionIdListNames",
            _ => "xsd:string",
        }
    }
}

/// One field of an object.
#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub nillable: bool,
    pub length: u32,
    pub reference_to: &'static [&'static str],
    pub relationship_name: Option<&'static str>,
    /// For components of a compound field (e.g. `BillingCity` → `BillingAddress`).
    pub compound_field_name: Option<&'static str>,
    pub picklist: Vec<Cow<'static, str>>,
    pub html_formatted: bool,
    pub custom: bool,
    pub label: String,
    /// Whether the integration user's APIs see the field.
    pub access: FieldAccess,
    /// A formula field: Salesforce computes it on read, so its value can change without
    /// moving any timestamp.
    pub calculated: bool,
}

/// Whether the APIs show a field to the integration user. A field that is not visible is
/// absent from describe and record reads, and naming it in SOQL is `INVALID_FIELD`; its
/// storage slot stays, so rows and open cursors keep their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldAccess {
    /// Shown.
    #[default]
    Visible,
    /// Field-level security hides it from the integration user; the data is still there.
    Hidden,
    /// Deleted in Setup: gone for everyone.
    Deleted,
}

impl FieldDef {
    fn new(name: impl Into<Cow<'static, str>>, kind: Kind) -> Self {
        let name = name.into();
        let length = match kind {
            Kind::Id | Kind::Reference => 18,
            Kind::String | Kind::Email | Kind::Phone | Kind::Url | Kind::Picklist => 255,
            Kind::TextArea => 32_000,
            _ => 0,
        };
        FieldDef {
            custom: name.ends_with("__c"),
            label: label_of(&name),
            name,
            kind,
            nillable: !matches!(kind, Kind::Id | Kind::Boolean),
            length,
            reference_to: &[],
            relationship_name: None,
            compound_field_name: None,
            picklist: Vec::new(),
            html_formatted: false,
            access: FieldAccess::Visible,
            calculated: false,
        }
    }

    /// Whether the integration user's APIs see the field.
    pub fn visible(&self) -> bool {
        self.access == FieldAccess::Visible
    }

    /// The value rows written before this field existed read as: `false` for a
    /// checkbox (Salesforce fills the default into existing records), else null.
    pub fn backfill(&self) -> crate::data::Val {
        if self.kind == Kind::Boolean {
            crate::data::Val::Bool(false)
        } else {
            crate::data::Val::Null
        }
    }
}

/// A custom field as an admin defines it in Setup (the control API's
/// `{"name","type","length"?,"label"?,"values"?}`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSpec {
    pub name: String,
    /// Describe type: string, textarea, email, phone, url, picklist, boolean, int,
    /// double, currency, percent, date, datetime.
    #[serde(rename = "type")]
    pub kind: String,
    /// Text length (string: 1..=255, default 255; textarea: 1..=131072, default 255,
    /// above 255 a long text area).
    #[serde(default)]
    pub length: Option<u32>,
    #[serde(default)]
    pub label: Option<String>,
    /// Picklist values (describe `picklistValues`; values are not enforced).
    #[serde(default)]
    pub values: Vec<String>,
    /// A formula field (describe `calculated: true`); its value changes with `recalc`.
    #[serde(default)]
    pub calculated: bool,
}

/// Builds the definition of a custom field an admin adds at run time. Errors name the
/// field and the problem. Uniqueness within the object is the caller's check.
pub fn custom_field(spec: &CustomFieldSpec) -> Result<FieldDef, String> {
    let name = spec.name.as_str();
    let err = |msg: &str| format!("field {name:?}: {msg}");
    let Some(base) = name
        .len()
        .checked_sub(3)
        .filter(|&n| name.is_char_boundary(n) && name[n..].eq_ignore_ascii_case("__c"))
        .map(|n| &name[..n])
    else {
        return Err(err("custom field names must end in __c"));
    };
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(err("the API name must begin with a letter"));
    }
    if !base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err(
            "the API name may contain only letters, digits and underscores",
        ));
    }
    if base.contains("__") || base.ends_with('_') {
        return Err(err(
            "the API name cannot contain two consecutive underscores or end with an underscore",
        ));
    }
    if base.len() > 40 {
        return Err(err(
            "the API name is longer than 40 characters (before __c)",
        ));
    }
    let kind = match spec.kind.to_ascii_lowercase().as_str() {
        "string" => Kind::String,
        "textarea" => Kind::TextArea,
        "email" => Kind::Email,
        "phone" => Kind::Phone,
        "url" => Kind::Url,
        "picklist" => Kind::Picklist,
        "boolean" => Kind::Boolean,
        "int" => Kind::Int,
        "double" => Kind::Double,
        "currency" => Kind::Currency,
        "percent" => Kind::Percent,
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "json" => Kind::Json,
        _ => {
            return Err(err(&format!(
                "unsupported type {:?} (string, textarea, email, phone, url, picklist, \
                 boolean, int, double, currency, percent, date, datetime, json)",
                spec.kind
            )));
        }
    };
    let mut f = FieldDef::new(format!("{base}__c"), kind);
    f.calculated = spec.calculated;
    match (kind, spec.length) {
        (Kind::String, Some(n)) if !(1..=255).contains(&n) => {
            return Err(err("length of a string field must be 1..=255"));
        }
        (Kind::TextArea, Some(n)) if !(1..=131_072).contains(&n) => {
            return Err(err("length of a textarea field must be 1..=131072"));
        }
        (Kind::String | Kind::TextArea, Some(n)) => f.length = n,
        (Kind::TextArea, None) => f.length = 255,
        (_, Some(_)) => return Err(err("length applies to string and textarea fields only")),
        (_, None) => {}
    }
    if !spec.values.is_empty() {
        if kind != Kind::Picklist {
            return Err(err("values apply to picklist fields only"));
        }
        f.picklist = spec.values.iter().cloned().map(Cow::Owned).collect();
    }
    if let Some(label) = &spec.label {
        f.label = label.clone();
    }
    Ok(f)
}

/// A parent-to-child relationship as describe's `childRelationships` lists it.
#[derive(Clone, Debug)]
pub struct ChildRel {
    pub relationship_name: &'static str,
    pub child_object: &'static str,
    pub field: &'static str,
}

/// One sObject.
#[derive(Clone, Debug)]
pub struct ObjectDef {
    pub name: &'static str,
    pub label: &'static str,
    pub label_plural: &'static str,
    pub key_prefix: &'static str,
    pub custom: bool,
    pub fields: Vec<FieldDef>,
    pub children: Vec<ChildRel>,
    /// Whether getUpdated/getDeleted are supported (describe `replicateable`).
    pub replicateable: bool,
}

impl ObjectDef {
    /// Position of a field by case-insensitive name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// A field by case-insensitive name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// Position of a field the integration user's APIs see, by case-insensitive name.
    pub fn api_field_index(&self, name: &str) -> Option<usize> {
        self.field_index(name).filter(|&i| self.fields[i].visible())
    }

    /// Whether the object has a field with this exact name.
    pub fn has(&self, name: &str) -> bool {
        self.field_index(name).is_some()
    }
}

fn label_of(name: &str) -> String {
    let base = name.trim_end_matches("__c").replace('_', " ");
    let mut out = String::new();
    let chars: Vec<char> = base.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if i > 0 && c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        out.push(*c);
    }
    let trimmed = out.strip_suffix(" Id").map(str::to_string);
    trimmed.map(|t| format!("{t} ID")).unwrap_or(out)
}

/// Builder for an object's field list.
struct B {
    fields: Vec<FieldDef>,
}

impl B {
    fn new() -> Self {
        B {
            fields: vec![FieldDef {
                nillable: false,
                ..FieldDef::new("Id", Kind::Id)
            }],
        }
    }
    fn f(mut self, name: &'static str, kind: Kind) -> Self {
        self.fields.push(FieldDef::new(name, kind));
        self
    }
    fn req(mut self) -> Self {
        self.fields.last_mut().expect("field").nillable = false;
        self
    }
    fn len(mut self, n: u32) -> Self {
        self.fields.last_mut().expect("field").length = n;
        self
    }
    fn pick(mut self, name: &'static str, values: &'static [&'static str]) -> Self {
        let mut f = FieldDef::new(name, Kind::Picklist);
        f.picklist = values.iter().map(|&v| Cow::Borrowed(v)).collect();
        self.fields.push(f);
        self
    }
    fn html(mut self) -> Self {
        self.fields.last_mut().expect("field").html_formatted = true;
        self
    }
    fn refr(
        mut self,
        name: &'static str,
        to: &'static [&'static str],
        rel: Option<&'static str>,
    ) -> Self {
        let mut f = FieldDef::new(name, Kind::Reference);
        f.reference_to = to;
        f.relationship_name = rel;
        self.fields.push(f);
        self
    }
    /// Adds an address compound and its components, e.g. `prefix = "Billing"`.
    fn address(mut self, prefix: &'static str, compound: &'static str) -> Self {
        let parts: [(&str, Kind); 8] = [
            ("Street", Kind::TextArea),
            ("City", Kind::String),
            ("State", Kind::String),
            ("PostalCode", Kind::String),
            ("Country", Kind::String),
            ("Latitude", Kind::Double),
            ("Longitude", Kind::Double),
            ("GeocodeAccuracy", Kind::Picklist),
        ];
        for (suffix, kind) in parts {
            let mut f = FieldDef::new(format!("{prefix}{suffix}"), kind);
            f.compound_field_name = Some(compound);
            if kind == Kind::TextArea {
                f.length = 255;
            }
            if suffix == "GeocodeAccuracy" {
                f.picklist = ["Address", "NearAddress", "Block", "Street", "City", "Zip"]
                    .map(Cow::Borrowed)
                    .into();
            }
            self.fields.push(f);
        }
        self.fields.push(FieldDef::new(compound, Kind::Address));
        self
    }
    /// Audit fields shared by most objects.
    fn system(self, modstamp: bool) -> Self {
        let b = self
            .f("IsDeleted", Kind::Boolean)
            .refr("CreatedById", &["User"], Some("CreatedBy"))
            .f("CreatedDate", Kind::DateTime)
            .req();
        if modstamp {
            b.refr("LastModifiedById", &["User"], Some("LastModifiedBy"))
                .f("LastModifiedDate", Kind::DateTime)
                .req()
                .f("SystemModstamp", Kind::DateTime)
                .req()
        } else {
            b
        }
    }
    fn done(self) -> Vec<FieldDef> {
        self.fields
    }
}

fn obj(
    name: &'static str,
    label: &'static str,
    label_plural: &'static str,
    key_prefix: &'static str,
    fields: Vec<FieldDef>,
    children: Vec<ChildRel>,
) -> ObjectDef {
    ObjectDef {
        name,
        label,
        label_plural,
        key_prefix,
        custom: name.ends_with("__kav") || name.ends_with("__c"),
        fields,
        children,
        replicateable: true,
    }
}

fn child(rel: &'static str, object: &'static str, field: &'static str) -> ChildRel {
    ChildRel {
        relationship_name: rel,
        child_object: object,
        field,
    }
}

/// Case statuses; the last one is closed.
pub const CASE_STATUS: &[&str] = &["New", "Working", "Escalated", "Closed"];
/// Knowledge publish states.
pub const PUBLISH_STATUS: &[&str] = &["Draft", "Online", "Archived"];

/// Every object of the emulated org, in describe-global order.
pub fn all_objects() -> Vec<ObjectDef> {
    vec![
        account(),
        case(),
        case_comment(),
        case_history(),
        contact(),
        email_message(),
        knowledge(),
        lead(),
        opportunity(),
        task(),
        user(),
        user_permission_access(),
    ]
}

fn account() -> ObjectDef {
    let f = B::new()
        .f("Name", Kind::String)
        .req()
        .pick(
            "Type",
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Partner",
            ],
        )
        .refr("ParentId", &["Account"], Some("Parent"))
        .f("AccountNumber", Kind::String)
        .len(40)
        .pick(
            "Industry",
            &[
                "Agriculture",
                "Banking",
                "Education",
                "Energy",
                "Healthcare",
                "Manufacturing",
                "Retail",
                "Technology",
            ],
        )
        .f("AnnualRevenue", Kind::Currency)
        .f("NumberOfEmployees", Kind::Int)
        .f("Phone", Kind::Phone)
        .f("Website", Kind::Url)
        .f("Description", Kind::TextArea)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .address("Billing", "BillingAddress")
        .address("Shipping", "ShippingAddress")
        .f("LastActivityDate", Kind::Date)
        .system(true)
        .done();
    obj(
        "Account",
        "Account",
        "Accounts",
        "001",
        f,
        vec![
            child("Cases", "Case", "AccountId"),
            child("Contacts", "Contact", "AccountId"),
            child("Opportunities", "Opportunity", "AccountId"),
            child("ChildAccounts", "Account", "ParentId"),
        ],
    )
}

fn case() -> ObjectDef {
    let f = B::new()
        .f("CaseNumber", Kind::String)
        .req()
        .len(30)
        .f("Subject", Kind::String)
        .f("Description", Kind::TextArea)
        .pick("Status", CASE_STATUS)
        .pick("Priority", &["High", "Medium", "Low"])
        .pick("Origin", &["Phone", "Email", "Web"])
        .pick(
            "Type",
            &[
                "Mechanical",
                "Electrical",
                "Electronic",
                "Structural",
                "Other",
            ],
        )
        .pick(
            "Reason",
            &[
                "Installation",
                "Equipment Complexity",
                "Performance",
                "Breakdown",
                "Feedback",
            ],
        )
        .f("IsClosed", Kind::Boolean)
        .f("ClosedDate", Kind::DateTime)
        .f("IsEscalated", Kind::Boolean)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .refr("AccountId", &["Account"], Some("Account"))
        .refr("ContactId", &["Contact"], Some("Contact"))
        .refr("ParentId", &["Case"], Some("Parent"))
        .f("SuppliedName", Kind::String)
        .len(80)
        .f("SuppliedEmail", Kind::Email)
        .f("SuppliedPhone", Kind::String)
        .len(40)
        .system(true)
        .done();
    obj(
        "Case",
        "Case",
        "Cases",
        "500",
        f,
        vec![
            child("CaseComments", "CaseComment", "ParentId"),
            child("EmailMessages", "EmailMessage", "ParentId"),
            child("Histories", "CaseHistory", "CaseId"),
            child("Cases", "Case", "ParentId"),
            child("Tasks", "Task", "WhatId"),
        ],
    )
}

fn case_comment() -> ObjectDef {
    let f = B::new()
        .refr("ParentId", &["Case"], Some("Parent"))
        .req()
        .f("CommentBody", Kind::TextArea)
        .len(4000)
        .f("IsPublished", Kind::Boolean)
        .system(true)
        .done();
    obj(
        "CaseComment",
        "Case Comment",
        "Case Comments",
        "00a",
        f,
        vec![],
    )
}

fn case_history() -> ObjectDef {
    let f = B::new()
        .refr("CaseId", &["Case"], Some("Case"))
        .req()
        .pick(
            "Field",
            &[
                "created",
                "Status",
                "Priority",
                "IsEscalated",
                "Owner",
                "ownerAssignment",
            ],
        )
        .pick(
            "DataType",
            &["Text", "EntityId", "DynamicEnum", "DateTime", "Boolean"],
        )
        .f("OldValue", Kind::AnyType)
        .f("NewValue", Kind::AnyType)
        .system(false)
        .done();
    let mut o = obj(
        "CaseHistory",
        "Case History",
        "Case History",
        "017",
        f,
        vec![],
    );
    // History rows have no SystemModstamp; getUpdated/getDeleted are not supported.
    o.replicateable = false;
    o
}

fn contact() -> ObjectDef {
    let f = B::new()
        .refr("AccountId", &["Account"], Some("Account"))
        .pick("Salutation", &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."])
        .f("FirstName", Kind::String)
        .len(40)
        .f("LastName", Kind::String)
        .req()
        .len(80)
        .f("Name", Kind::String)
        .req()
        .len(121)
        .f("Title", Kind::String)
        .len(128)
        .f("Department", Kind::String)
        .len(80)
        .f("Email", Kind::Email)
        .f("Phone", Kind::Phone)
        .f("MobilePhone", Kind::Phone)
        .refr("ReportsToId", &["Contact"], Some("ReportsTo"))
        .pick(
            "LeadSource",
            &["Web", "Phone Inquiry", "Partner Referral", "Other"],
        )
        .f("Birthdate", Kind::Date)
        .f("Description", Kind::TextArea)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .address("Mailing", "MailingAddress")
        .f("HasOptedOutOfEmail", Kind::Boolean)
        .system(true)
        .done();
    obj(
        "Contact",
        "Contact",
        "Contacts",
        "003",
        f,
        vec![child("Cases", "Case", "ContactId")],
    )
}

fn email_message() -> ObjectDef {
    let f = B::new()
        .refr("ParentId", &["Case"], Some("Parent"))
        .f("Subject", Kind::String)
        .len(3000)
        .f("TextBody", Kind::TextArea)
        .len(131_072)
        .f("HtmlBody", Kind::TextArea)
        .len(131_072)
        .html()
        .f("FromAddress", Kind::Email)
        .f("FromName", Kind::String)
        .len(1000)
        .f("ToAddress", Kind::String)
        .len(4000)
        .f("CcAddress", Kind::String)
        .len(4000)
        .f("Incoming", Kind::Boolean)
        .pick("Status", &["0", "1", "2", "3", "4", "5"])
        .f("MessageDate", Kind::DateTime)
        .f("HasAttachment", Kind::Boolean)
        .system(true)
        .done();
    obj(
        "EmailMessage",
        "Email Message",
        "Email Messages",
        "02s",
        f,
        vec![],
    )
}

fn knowledge() -> ObjectDef {
    let f = B::new()
        .refr("KnowledgeArticleId", &["Knowledge__ka"], None)
        .req()
        .f("ArticleNumber", Kind::String)
        .req()
        .len(30)
        .f("Title", Kind::String)
        .req()
        .f("UrlName", Kind::String)
        .req()
        .f("Summary", Kind::TextArea)
        .len(1000)
        .pick("PublishStatus", PUBLISH_STATUS)
        .req()
        .pick("Language", &["en_US", "fr", "de", "ja"])
        .req()
        .f("IsLatestVersion", Kind::Boolean)
        .f("VersionNumber", Kind::Int)
        .req()
        .f("IsMasterLanguage", Kind::Boolean)
        .f("IsVisibleInApp", Kind::Boolean)
        .f("IsVisibleInPkb", Kind::Boolean)
        .f("IsVisibleInCsp", Kind::Boolean)
        .f("IsVisibleInPrm", Kind::Boolean)
        .pick("ValidationStatus", &["Not Validated", "Validated"])
        .f("FirstPublishedDate", Kind::DateTime)
        .f("LastPublishedDate", Kind::DateTime)
        .f("ArchivedDate", Kind::DateTime)
        .refr("OwnerId", &["User"], Some("Owner"))
        .f("Body__c", Kind::TextArea)
        .len(131_072)
        .html()
        .f("Answer__c", Kind::TextArea)
        .len(32_768)
        .html()
        .system(true)
        .done();
    obj("Knowledge__kav", "Knowledge", "Knowledge", "ka0", f, vec![])
}

fn lead() -> ObjectDef {
    let f = B::new()
        .pick("Salutation", &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."])
        .f("FirstName", Kind::String)
        .len(40)
        .f("LastName", Kind::String)
        .req()
        .len(80)
        .f("Name", Kind::String)
        .req()
        .len(121)
        .f("Company", Kind::String)
        .req()
        .f("Title", Kind::String)
        .len(128)
        .f("Email", Kind::Email)
        .f("Phone", Kind::Phone)
        .pick(
            "Status",
            &[
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ],
        )
        .pick(
            "LeadSource",
            &["Web", "Phone Inquiry", "Partner Referral", "Other"],
        )
        .pick("Rating", &["Hot", "Warm", "Cold"])
        .f("AnnualRevenue", Kind::Currency)
        .f("NumberOfEmployees", Kind::Int)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .f("IsConverted", Kind::Boolean)
        .f("ConvertedDate", Kind::Date)
        .refr("ConvertedAccountId", &["Account"], Some("ConvertedAccount"))
        .address("", "Address")
        .system(true)
        .done();
    obj("Lead", "Lead", "Leads", "00Q", f, vec![])
}

fn opportunity() -> ObjectDef {
    let f = B::new()
        .refr("AccountId", &["Account"], Some("Account"))
        .f("Name", Kind::String)
        .req()
        .len(120)
        .pick(
            "StageName",
            &[
                "Prospecting",
                "Qualification",
                "Proposal/Price Quote",
                "Negotiation/Review",
                "Closed Won",
                "Closed Lost",
            ],
        )
        .req()
        .f("Amount", Kind::Currency)
        .f("Probability", Kind::Percent)
        .f("CloseDate", Kind::Date)
        .req()
        .pick("Type", &["New Customer", "Existing Customer - Upgrade"])
        .f("NextStep", Kind::String)
        .f("Description", Kind::TextArea)
        .f("IsClosed", Kind::Boolean)
        .f("IsWon", Kind::Boolean)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .system(true)
        .done();
    obj(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        "006",
        f,
        vec![],
    )
}

fn task() -> ObjectDef {
    let f = B::new()
        .refr("WhatId", &["Case", "Account", "Opportunity"], Some("What"))
        .refr("WhoId", &["Contact", "Lead"], Some("Who"))
        .f("TaskWhoIds", Kind::JunctionIdList)
        .f("Subject", Kind::String)
        .pick("Status", &["Not Started", "In Progress", "Completed"])
        .pick("Priority", &["High", "Normal", "Low"])
        .f("ActivityDate", Kind::Date)
        .f("Description", Kind::TextArea)
        .f("IsClosed", Kind::Boolean)
        .f("IsArchived", Kind::Boolean)
        .refr("OwnerId", &["User"], Some("Owner"))
        .req()
        .system(true)
        .done();
    obj("Task", "Task", "Tasks", "00T", f, vec![])
}

fn user() -> ObjectDef {
    let mut fields = B::new()
        .f("Username", Kind::String)
        .req()
        .len(80)
        .f("FirstName", Kind::String)
        .len(40)
        .f("LastName", Kind::String)
        .req()
        .len(80)
        .f("Name", Kind::String)
        .req()
        .len(121)
        .f("Email", Kind::Email)
        .req()
        .f("Alias", Kind::String)
        .req()
        .len(8)
        .f("IsActive", Kind::Boolean)
        .pick(
            "UserType",
            &[
                "Standard",
                "PowerPartner",
                "CspLitePortal",
                "AutomatedProcess",
            ],
        )
        .f("Title", Kind::String)
        .len(80)
        .f("Department", Kind::String)
        .len(80)
        .refr("ManagerId", &["User"], Some("Manager"))
        .f("TimeZoneSidKey", Kind::Picklist)
        .f("LanguageLocaleKey", Kind::Picklist)
        .address("", "Address")
        .f("LastLoginDate", Kind::DateTime)
        .system(true)
        .done();
    // Users are deactivated, never deleted, and have no IsDeleted field.
    fields.retain(|f| f.name != "IsDeleted");
    obj("User", "User", "Users", "005", fields, vec![])
}

/// The integration user's own permissions (API 41.0+: `describeSObjects` and `query` only),
/// one `Permissions<Name>` checkbox per permission. Its single row is rewritten from the
/// settings ([`crate::access::sync_permissions`]). The key prefix is the emulator's choice.
fn user_permission_access() -> ObjectDef {
    let f = B::new()
        .f("LastCacheUpdate", Kind::DateTime)
        .f("PermissionsViewArchivedArticles", Kind::Boolean)
        .f("PermissionsViewSetup", Kind::Boolean)
        .done();
    ObjectDef {
        replicateable: false,
        ..obj(
            "UserPermissionAccess",
            "User Permission Access",
            "User Permission Access",
            "0up",
            f,
            vec![],
        )
    }
}
