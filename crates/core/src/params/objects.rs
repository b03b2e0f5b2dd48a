//! The `objects` parameter: YAML (`array` of YAML strings) → validated
//! [`KeyVaultObject`]s in declaration order, with the size, count, version
//! and depth limits and the output-path checks.
//!
//! Parses and validates; must not fetch or render. The shape scan
//! (`yaml`: nesting, alias expansion) runs before `serde_yaml_ng` sees a
//! document, the outer one and each element's.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::ParamsError;
use crate::object::{JmesPathSpec, KeyVaultObject, ObjectSpec};

mod yaml;

pub use yaml::{
    MAX_ANCHORS, MAX_BLOCK_DEPTH, MAX_EXPANDED_BYTES, MAX_EXPANDED_NODES, MAX_FLOW_DEPTH, YamlLimit,
};

/// Largest `objects` YAML accepted (a SecretProviderClass is stored in etcd,
/// itself limited to about 1.5 MiB).
pub const MAX_OBJECTS_YAML_BYTES: usize = 1 << 20;
/// Most objects in one SecretProviderClass.
pub const MAX_OBJECTS: usize = 1000;
/// Most object versions (fetches) in one mount: every object counts
/// `max(1, objectVersionHistory)`.
pub const MAX_OBJECT_VERSIONS: usize = 10_000;

/// `{array: [<yaml string>, ...]}`.
#[derive(Deserialize)]
struct ObjectList {
    /// Outer `None`: no `array` key; inner `None`: `array:` with no value.
    #[serde(default, deserialize_with = "present")]
    array: Option<Option<Vec<Option<String>>>>,
}

/// One element of `array`. Scalars of any YAML type read as their text
/// (yaml.v3 does the same for string fields); unknown keys are ignored.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    object_name: Option<String>,
    object_alias: Option<String>,
    object_version: Option<String>,
    object_version_history: Option<i32>,
    object_type: Option<String>,
    object_format: Option<String>,
    object_encoding: Option<String>,
    file_permission: Option<String>,
    // Extensions (upstream ignores these keys).
    keyvault_name: Option<String>,
    optional: Option<String>,
    jmes_path: Option<Vec<Option<RawJmesPath>>>,
}

/// One `jmesPath` entry (the AWS provider's shape).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJmesPath {
    path: Option<String>,
    object_alias: Option<String>,
    file_permission: Option<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parses and validates every object before anything is fetched.
pub(super) fn objects(yaml: &str) -> Result<Vec<KeyVaultObject>, ParamsError> {
    if yaml.is_empty() {
        return Err(ParamsError::ObjectsNotSet);
    }
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(ParamsError::ObjectsTooLarge(yaml.len()));
    }
    match yaml::shape(yaml).over_limit() {
        None => {}
        Some(YamlLimit::FlowDepth) => return Err(ParamsError::ObjectsTooDeep),
        Some(limit) => return Err(ParamsError::ObjectsOverLimit(limit)),
    }
    let list: ObjectList =
        serde_yaml_ng::from_str(yaml).map_err(|e| ParamsError::ObjectsYaml(e.to_string()))?;
    // Deliberate: upstream reads a missing `array` key as an empty list and
    // mounts nothing; that is always a typo, so say so.
    let array = list
        .array
        .ok_or_else(|| ParamsError::ObjectsYaml("missing field `array`".to_owned()))?
        .unwrap_or_default();
    if array.len() > MAX_OBJECTS {
        return Err(ParamsError::TooManyObjects(array.len()));
    }
    let mut objects = Vec::with_capacity(array.len());
    for (index, element) in array.iter().enumerate() {
        let spec = object_spec(element.as_deref().unwrap_or_default(), index)?;
        let context = spec.context();
        let object = KeyVaultObject::from_spec(spec)
            .map_err(|source| ParamsError::Object { context, source })?;
        objects.push(object);
    }
    let versions: usize = objects
        .iter()
        .map(|o| o.version_history.max(1).unsigned_abs() as usize)
        .sum();
    if versions > MAX_OBJECT_VERSIONS {
        return Err(ParamsError::TooManyVersions(versions));
    }
    check_output_paths(&objects)?;
    Ok(objects)
}

fn object_spec(yaml: &str, index: usize) -> Result<ObjectSpec, ParamsError> {
    match yaml::shape(yaml).over_limit() {
        None => {}
        Some(YamlLimit::FlowDepth) => return Err(ParamsError::ObjectTooDeep(index)),
        Some(limit) => return Err(ParamsError::ObjectOverLimit { index, limit }),
    }
    let raw: Option<RawObject> = serde_yaml_ng::from_str(yaml)
        .map_err(|source| ParamsError::ObjectUnmarshal { index, source })?;
    let raw = raw.unwrap_or_default();
    let trim = |s: Option<String>| s.map(|s| s.trim().to_owned()).unwrap_or_default();
    Ok(ObjectSpec {
        name: trim(raw.object_name),
        alias: trim(raw.object_alias),
        version: trim(raw.object_version),
        version_history: raw.object_version_history.unwrap_or(0),
        object_type: trim(raw.object_type),
        format: trim(raw.object_format),
        encoding: trim(raw.object_encoding),
        file_permission: trim(raw.file_permission),
        keyvault_name: trim(raw.keyvault_name),
        optional: trim(raw.optional),
        jmes_path: raw
            .jmes_path
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let entry = entry.unwrap_or_default();
                JmesPathSpec {
                    path: trim(entry.path),
                    alias: trim(entry.object_alias),
                    file_permission: trim(entry.file_permission),
                }
            })
            .collect(),
    })
}

/// No object may write a file where another needs a directory (`a` and
/// `a/b`): the driver's writer fails on those too. Two objects writing the
/// same file pass, as upstream: the driver keeps the last (`mount` warns and
/// counts it).
fn check_output_paths(objects: &[KeyVaultObject]) -> Result<(), ParamsError> {
    let owner = |index: usize| (index, objects[index].name.clone());
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for (index, object) in objects.iter().enumerate() {
        for path in output_paths(object) {
            paths.entry(path).or_insert(index);
        }
    }
    for (nested_path, &nested) in &paths {
        for (end, _) in nested_path.match_indices('/') {
            let path = &nested_path[..end];
            if let Some(&file) = paths.get(path) {
                return Err(ParamsError::FileDirectoryConflict {
                    path: path.to_owned(),
                    file: owner(file),
                    nested_path: nested_path.clone(),
                    nested: owner(nested),
                });
            }
        }
    }
    Ok(())
}

/// The files an object writes: its file name (and its `jmesPath` files),
/// or `<name>/<i>` per version.
fn output_paths(object: &KeyVaultObject) -> Vec<String> {
    let base = object.file_name();
    if object.is_single_version() {
        let jmes_path = object.extensions.jmes_path.iter();
        return std::iter::once(base.to_owned())
            .chain(jmes_path.map(|entry| entry.alias.clone()))
            .collect();
    }
    (0..object.version_history)
        .map(|i| format!("{base}/{i}"))
        .collect()
}
