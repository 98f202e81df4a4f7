//! An OCSF event validator reading the schema's own definition files (`schema-1.8.0/`).
//!
//! Definitions are compiled as the OCSF tools do (ocsf-lib-py's compiler, ocsf-server's
//! validator): `$include`d files and the `extends` parent are merged under a definition's own
//! attributes (its own keys win, nested maps such as enums are merged), attributes of a
//! profile file are marked with the profile's name, and the dictionary completes every
//! attribute (type, enum members, sibling). An explicit `"profile": null` keeps an attribute
//! out of any profile (system classes make `actor` and `device` theirs that way). As the server
//! does, `class_uid`, `category_uid` and `type_uid` get their enums from the class.
//!
//! An event is checked as ocsf-server's validator checks it, with its warnings made errors:
//! required attributes present, no attribute unknown to its class or object or belonging to a
//! profile the event does not declare in `metadata.profiles`, no deprecated attribute, every
//! value of its type (integer_t in the i64 range, ranges and `max_len` of the type, `ip_t`
//! parsed), enum values defined, an enum's sibling caption equal to the value's (present, and
//! not "Other", for 99), `at_least_one`/`just_one` constraints, `type_uid` = `class_uid` × 100
//! + `activity_id`, `metadata.version` the schema's; recursively into every object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// A compiled class or object.
#[derive(Clone, Debug)]
pub struct Definition {
    pub name: String,
    pub caption: String,
    pub attributes: Map<String, Value>,
    constraints: Map<String, Value>,
    category: Option<String>,
}

pub struct Schema {
    version: String,
    types: Map<String, Value>,
    profiles: BTreeSet<String>,
    classes: BTreeMap<u64, Definition>,
    objects: BTreeMap<String, Definition>,
}

type Raw = BTreeMap<String, Value>;

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Definitions under `dir` (recursively) by their `name`.
fn read_definitions(dir: &Path) -> Result<Raw, String> {
    let mut out = Raw::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "json") {
                let v = read(&path)?;
                let name = v["name"]
                    .as_str()
                    .ok_or(format!("{}: no name", path.display()))?;
                out.insert(name.to_owned(), v);
            }
        }
    }
    Ok(out)
}

/// Merges `right` under `left`: keys `left` lacks are added, maps present in both merged.
fn fill(left: &mut Map<String, Value>, right: &Map<String, Value>) {
    for (k, rv) in right {
        match (left.get_mut(k), rv) {
            (None, _) => {
                left.insert(k.clone(), rv.clone());
            }
            (Some(Value::Object(l)), Value::Object(r)) => fill(l, r),
            (Some(_), _) => {}
        }
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

struct Compiler<'a> {
    root: &'a Path,
    dictionary: &'a Map<String, Value>,
    raw: &'a Raw,
}

impl Compiler<'_> {
    fn compile(&self, name: &str) -> Result<Definition, String> {
        let raw = self
            .raw
            .get(name)
            .ok_or(format!("no definition {name} (its file is not kept)"))?;
        let mut attributes = object(&raw["attributes"]);
        let mut includes: Vec<Value> = Vec::new();
        for v in [attributes.remove("$include"), raw.get("$include").cloned()]
            .into_iter()
            .flatten()
        {
            match v {
                Value::Array(a) => includes.extend(a),
                other => includes.push(other),
            }
        }
        for include in includes {
            let rel = include.as_str().ok_or(format!("{name}: bad $include"))?;
            let file = read(&self.root.join(rel))?;
            let mut included = object(&file["attributes"]);
            if file["meta"] == "profile" {
                for attr in included.values_mut() {
                    if let Value::Object(a) = attr {
                        a.entry("profile").or_insert(file["name"].clone());
                    }
                }
            }
            fill(&mut attributes, &included);
        }
        let mut constraints = object(&raw["constraints"]);
        let mut category = raw["category"].as_str().map(str::to_owned);
        if let Some(parent) = raw["extends"].as_str() {
            let parent = self.compile(parent)?;
            fill(&mut attributes, &parent.attributes);
            fill(&mut constraints, &parent.constraints);
            category = category.or(parent.category);
        }
        for (attr_name, attr) in attributes.iter_mut() {
            let d = self
                .dictionary
                .get(attr_name)
                .and_then(Value::as_object)
                .ok_or(format!("{name}.{attr_name}: not in the dictionary"))?;
            let Value::Object(attr) = attr else {
                return Err(format!("{name}.{attr_name}: not an object"));
            };
            fill(attr, d);
        }
        Ok(Definition {
            name: name.to_owned(),
            caption: raw["caption"].as_str().unwrap_or(name).to_owned(),
            attributes,
            constraints,
            category,
        })
    }
}

impl Schema {
    pub fn load(root: &Path) -> Result<Schema, String> {
        let dictionary = read(&root.join("dictionary.json"))?;
        let types = object(&dictionary["types"]["attributes"]);
        let dictionary = object(&dictionary["attributes"]);
        let categories = object(&read(&root.join("categories.json"))?["attributes"]);
        let version = read(&root.join("version.json"))?["version"]
            .as_str()
            .ok_or("version.json: no version")?
            .to_owned();
        let profiles = read_definitions(&root.join("profiles"))?
            .into_keys()
            .collect();

        let raw_objects = read_definitions(&root.join("objects"))?;
        let objects_compiler = Compiler {
            root,
            dictionary: &dictionary,
            raw: &raw_objects,
        };
        let objects = raw_objects
            .keys()
            .map(|n| Ok((n.clone(), objects_compiler.compile(n)?)))
            .collect::<Result<_, String>>()?;

        let raw_events = read_definitions(&root.join("events"))?;
        let events_compiler = Compiler {
            root,
            dictionary: &dictionary,
            raw: &raw_events,
        };
        let mut classes = BTreeMap::new();
        for (name, raw) in &raw_events {
            let Some(uid) = raw["uid"].as_u64() else {
                continue;
            };
            let mut class = events_compiler.compile(name)?;
            let category_name = class
                .category
                .clone()
                .ok_or(format!("{name}: no category"))?;
            let category = categories
                .get(&category_name)
                .ok_or(format!("{name}: no category {category_name}"))?;
            let category_uid = category["uid"]
                .as_u64()
                .ok_or(format!("category {category_name}: no uid"))?;
            let class_uid = category_uid * 1000 + uid;
            derive_enums(
                &mut class,
                class_uid,
                category_uid,
                category["caption"].clone(),
            );
            classes.insert(class_uid, class);
        }
        Ok(Schema {
            version,
            types,
            profiles,
            classes,
            objects,
        })
    }

    pub fn class(&self, class_uid: u64) -> Option<&Definition> {
        self.classes.get(&class_uid)
    }

    /// The type of the attribute at `path` (names from the class down, through objects) in
    /// class `class_uid`: its base type (`string_t`, `integer_t`, `long_t`, `boolean_t`,
    /// `float_t`, `json_t`) or the object's name, and whether it is an array.
    pub fn attribute_type(&self, class_uid: u64, path: &[&str]) -> Result<(String, bool), String> {
        let mut def = self
            .classes
            .get(&class_uid)
            .ok_or(format!("no class {class_uid}"))?;
        let (last, objects) = path.split_last().ok_or("an empty path")?;
        for name in objects {
            let attr = def
                .attributes
                .get(*name)
                .ok_or(format!("{}: no attribute {name}", def.name))?;
            let t = attr["type"].as_str().unwrap_or("");
            def = self
                .objects
                .get(t)
                .ok_or(format!("{}.{name}: {t} is not an object", def.name))?;
        }
        let attr = def
            .attributes
            .get(*last)
            .ok_or(format!("{}: no attribute {last}", def.name))?;
        let mut t = attr["type"].as_str().unwrap_or("").to_owned();
        // A subtype to its base: port_t is an integer_t, timestamp_t a long_t.
        while let Some(base) = self.types.get(&t).and_then(|d| d["type"].as_str()) {
            t = base.to_owned();
        }
        Ok((t, attr["is_array"] == true))
    }

    /// Every way `event` breaks the schema; empty if it conforms.
    pub fn validate(&self, event: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(e) = event.as_object() else {
            return vec!["the event is not an object".into()];
        };
        let Some(class) = e
            .get("class_uid")
            .and_then(Value::as_u64)
            .and_then(|uid| self.classes.get(&uid))
        else {
            return vec![format!("class_uid {:?}: no such class", e.get("class_uid"))];
        };
        let mut profiles = BTreeSet::new();
        for p in e["metadata"]["profiles"].as_array().into_iter().flatten() {
            match p.as_str() {
                Some(name) if self.profiles.contains(name) => {
                    profiles.insert(name.to_owned());
                }
                _ => errors.push(format!("metadata.profiles: unknown profile {p}")),
            }
        }
        let check = Check {
            schema: self,
            profiles,
        };
        check.attributes(e, class, "", &mut errors);
        let int = |k: &str| e.get(k).and_then(Value::as_u64);
        if let (Some(class_uid), Some(activity_id), Some(type_uid)) =
            (int("class_uid"), int("activity_id"), int("type_uid"))
        {
            if type_uid != class_uid * 100 + activity_id {
                errors.push(format!(
                    "type_uid {type_uid} is not class_uid {class_uid} × 100 + activity_id {activity_id}"
                ));
            }
        }
        if e["metadata"]["version"] != self.version.as_str() {
            errors.push(format!(
                "metadata.version {} is not the schema's {}",
                e["metadata"]["version"], self.version
            ));
        }
        errors
    }
}

/// The enums the OCSF server derives for a class: its uid, its category's, its type_uids.
fn derive_enums(
    class: &mut Definition,
    class_uid: u64,
    category_uid: u64,
    category_caption: Value,
) {
    let activities = object(&class.attributes["activity_id"]["enum"]);
    let type_uids: Map<String, Value> = activities
        .iter()
        .filter_map(|(id, a)| {
            let id: u64 = id.parse().ok()?;
            let caption = format!("{}: {}", class.caption, a["caption"].as_str()?);
            Some((
                (class_uid * 100 + id).to_string(),
                json!({ "caption": caption }),
            ))
        })
        .collect();
    let derived = [
        ("class_uid", class_uid, json!({ "caption": class.caption })),
        (
            "category_uid",
            category_uid,
            json!({ "caption": category_caption }),
        ),
    ];
    for (attr, uid, value) in derived {
        class.attributes[attr]["enum"] = json!({ uid.to_string(): value });
    }
    class.attributes["type_uid"]["enum"] = type_uids.into();
}

struct Check<'a> {
    schema: &'a Schema,
    profiles: BTreeSet<String>,
}

impl Check<'_> {
    /// Whether an attribute is part of the event's schema: in no profile, or a declared one.
    fn active(&self, attr: &Value) -> bool {
        match &attr["profile"] {
            Value::Null => true,
            Value::String(p) => self.profiles.contains(p),
            _ => false,
        }
    }

    fn attributes(
        &self,
        value: &Map<String, Value>,
        def: &Definition,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        for (name, attr) in &def.attributes {
            let missing = value.get(name).is_none_or(Value::is_null);
            if self.active(attr) && attr["requirement"] == "required" && missing {
                errors.push(format!(
                    "{path}{name}: required by {} but missing",
                    def.name
                ));
            }
        }
        // An object without attributes (`object`) is open: any attribute goes.
        if def.attributes.is_empty() {
            return;
        }
        for (name, v) in value {
            let at = format!("{path}{name}");
            let Some(attr) = def.attributes.get(name) else {
                errors.push(format!("{at}: not an attribute of {}", def.name));
                continue;
            };
            if !self.active(attr) {
                errors.push(format!(
                    "{at}: in profile {}, which metadata.profiles does not declare",
                    attr["profile"]
                ));
                continue;
            }
            if attr.get("@deprecated").is_some() {
                errors.push(format!("{at}: deprecated"));
            }
            self.value(v, attr, &at, errors);
            if attr["enum"].is_object() {
                self.enum_member(value, name, v, attr, &at, errors);
            }
        }
        for (kind, names) in &def.constraints {
            let names: Vec<&str> = names
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let present = names.iter().filter(|n| value.contains_key(**n)).count();
            let ok = match kind.as_str() {
                "at_least_one" => present >= 1,
                "just_one" => present == 1,
                _ => false,
            };
            if !ok {
                errors.push(format!(
                    "{path}: {} constraint {kind} {names:?} fails",
                    def.name
                ));
            }
        }
    }

    /// `v` (each element of an array) is a member of `attr`'s enum, and its sibling in
    /// `parent` agrees.
    fn enum_member(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        v: &Value,
        attr: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let members = &attr["enum"];
        let values: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for v in values {
            let key = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let Some(member) = members.get(&key) else {
                errors.push(format!("{at}: {key} is not a value of enum {name}"));
                continue;
            };
            let Some(sibling) = attr["sibling"].as_str() else {
                continue;
            };
            let caption = &member["caption"];
            match (key.as_str(), parent.get(sibling)) {
                ("99", None) => errors.push(format!("{at}: 99 (Other) without its {sibling}")),
                ("99", Some(s)) if s == caption => errors.push(format!(
                    "{at}: 99 with {sibling} {s}, not the source's own value"
                )),
                ("99", Some(_)) | (_, None) => {}
                (_, Some(s)) if s != caption => {
                    errors.push(format!("{at}: {key} is {caption}, but {sibling} is {s}"))
                }
                _ => {}
            }
        }
    }

    fn value(&self, v: &Value, attr: &Value, at: &str, errors: &mut Vec<String>) {
        let type_name = attr["type"].as_str().unwrap_or("");
        if attr["is_array"] == true {
            match v.as_array() {
                Some(a) => {
                    for (i, e) in a.iter().enumerate() {
                        self.single(e, type_name, &format!("{at}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: not an array of {type_name}")),
            }
        } else {
            self.single(v, type_name, at, errors);
        }
    }

    fn single(&self, v: &Value, type_name: &str, at: &str, errors: &mut Vec<String>) {
        if let Some(t) = self.schema.types.get(type_name) {
            return self.primitive(v, type_name, t, at, errors);
        }
        let Some(def) = self.schema.objects.get(type_name) else {
            errors.push(format!(
                "{at}: type {type_name} is not a kept object or type"
            ));
            return;
        };
        match v.as_object() {
            Some(o) => self.attributes(o, def, &format!("{at}."), errors),
            None => errors.push(format!("{at}: not a {type_name} object")),
        }
    }

    fn primitive(&self, v: &Value, type_name: &str, t: &Value, at: &str, errors: &mut Vec<String>) {
        let types = &self.schema.types;
        let base = t["type"].as_str().unwrap_or(type_name);
        // A subtype's constraint, or its base type's.
        let rule = |key: &str| match &t[key] {
            Value::Null => types.get(base).map_or(Value::Null, |b| b[key].clone()),
            r => r.clone(),
        };
        let ok = match base {
            "string_t" => v.as_str().is_some_and(|s| {
                let fits = rule("max_len")
                    .as_u64()
                    .is_none_or(|m| s.chars().count() as u64 <= m);
                let ip = type_name != "ip_t" || s.parse::<std::net::IpAddr>().is_ok();
                fits && ip
            }),
            "integer_t" => v.is_i64(),
            "long_t" => v.is_i64() || v.is_u64(),
            "float_t" => v.is_f64(),
            "boolean_t" => v.is_boolean(),
            "json_t" => true,
            _ => {
                errors.push(format!("{at}: unknown primitive type {base}"));
                return;
            }
        };
        if !ok {
            errors.push(format!("{at}: {v} is not a {type_name}"));
            return;
        }
        if let (Some([lo, hi]), Some(n)) = (rule("range").as_array().map(Vec::as_slice), v.as_f64())
        {
            if lo.as_f64().is_some_and(|lo| n < lo) || hi.as_f64().is_some_and(|hi| n > hi) {
                errors.push(format!("{at}: {v} outside {type_name}'s range"));
            }
        }
    }
}

/// The schema files kept with the crate.
pub fn kept() -> Schema {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-1.8.0");
    Schema::load(&root).unwrap_or_else(|e| panic!("loading the OCSF schema: {e}"))
}
