//! Reading the members of a Lambda or ECS AppSpec, each with its rule and its path.

use serde_norway::{Mapping, Value};

use super::{
    lookup, AwsVpcConfiguration, CapacityProviderItem, Hook, Platform, PlatformAppSpecError, PLATFORM_APPSPEC_BYTES_MAX,
};

/// Longest function name or ARN (a qualified ARN is about 170 characters).
const FUNCTION_NAME_MAX: usize = 256;

/// Longest alias name (AWS: 128).
const ALIAS_MAX: usize = 128;

/// Longest other text member (task definition ARNs, container names, ids).
const TEXT_MAX: usize = 2048;

/// The reader of one document: its platform and the warnings so far.
pub(super) struct Reader {
    platform: Platform,
    pub(super) warnings: Vec<String>,
}

impl Reader {
    pub(super) fn new(platform: Platform) -> Self {
        Self { platform, warnings: Vec::new() }
    }

    fn error(&self, path: &str, message: impl Into<String>) -> PlatformAppSpecError {
        PlatformAppSpecError { platform: self.platform, path: path.to_string(), message: message.into() }
    }

    /// The document's root mapping, with `version: 0.0`.
    pub(super) fn document(&mut self, text: &str) -> Result<Mapping, PlatformAppSpecError> {
        if text.len() > PLATFORM_APPSPEC_BYTES_MAX {
            let message = format!("{} bytes; at most {PLATFORM_APPSPEC_BYTES_MAX} are accepted", text.len());
            return Err(self.error("", message));
        }
        let root: Value = serde_norway::from_str(text).map_err(|error| {
            let line = error.location().map(|location| format!(" (line {})", location.line())).unwrap_or_default();
            self.error("", format!("not YAML or JSON{line}: {error}"))
        })?;
        let Value::Mapping(root) = root else {
            return Err(self.error("", "must be a mapping with version, Resources and Hooks"));
        };
        let version = lookup(&root, "version").ok_or_else(|| self.error("version", "is required (0.0)"))?;
        let is_zero = match version {
            Value::Number(number) => number.as_f64() == Some(0.0),
            Value::String(text) => text.trim() == "0.0",
            _ => false,
        };
        if !is_zero {
            return Err(self.error("version", format!("must be 0.0, got {}", show(version))));
        }
        self.unknown_keys(&root, "", &["version", "Resources", "Hooks"]);
        Ok(root)
    }

    /// The one resource: its logical name and its `Properties`, after checking `Type`.
    pub(super) fn resource(&mut self, root: &Mapping) -> Result<(String, Mapping), PlatformAppSpecError> {
        let resources = lookup(root, "Resources").ok_or_else(|| self.error("Resources", "is required"))?;
        let Value::Sequence(items) = resources else {
            return Err(self.error("Resources", "must be a list with one resource (- name: {Type, Properties})"));
        };
        let [Value::Mapping(item)] = items.as_slice() else {
            let message = format!("must hold exactly one resource, found {} item(s)", items.len());
            return Err(self.error("Resources", message));
        };
        let mut entries = item.iter();
        let (Some((Value::String(name), Value::Mapping(body))), None) = (entries.next(), entries.next()) else {
            return Err(self.error("Resources[0]", "must be one logical name mapped to {Type, Properties}"));
        };
        let at = format!("Resources[0].{name}");
        let kind = lookup(body, "Type").ok_or_else(|| self.error(&format!("{at}.Type"), "is required"))?;
        let expected = self.platform.resource_type();
        if kind.as_str() != Some(expected) {
            let message = format!("must be {expected} for this application's platform, got {}", show(kind));
            return Err(self.error(&format!("{at}.Type"), message));
        }
        let properties = self.required(body, &format!("{at}.Properties"))?;
        let properties = self.mapping(&format!("{at}.Properties"), properties)?;
        self.unknown_keys(body, &at, &["Type", "Properties"]);
        Ok((name.clone(), properties))
    }

    /// The member named by the last segment of `path`, which must be present.
    pub(super) fn required(&self, mapping: &Mapping, path: &str) -> Result<Value, PlatformAppSpecError> {
        let key = path.rsplit('.').next().unwrap_or(path);
        lookup(mapping, key).cloned().ok_or_else(|| self.error(path, "is required"))
    }

    /// The member `key`, if present.
    pub(super) fn optional(&self, mapping: &Mapping, key: &str) -> Option<Value> {
        lookup(mapping, key).cloned()
    }

    pub(super) fn mapping(&self, path: &str, value: Value) -> Result<Mapping, PlatformAppSpecError> {
        match value {
            Value::Mapping(mapping) => Ok(mapping),
            other => Err(self.error(path, format!("must be a mapping, got {}", show(&other)))),
        }
    }

    /// A non-empty string of at most [`TEXT_MAX`] characters.
    pub(super) fn text(&self, path: &str, value: Value) -> Result<String, PlatformAppSpecError> {
        let Value::String(text) = value else {
            return Err(self.error(path, format!("must be a string, got {}", show(&value))));
        };
        if text.trim().is_empty() {
            return Err(self.error(path, "must not be empty"));
        }
        if text.chars().count() > TEXT_MAX {
            return Err(self.error(path, format!("is longer than {TEXT_MAX} characters")));
        }
        Ok(text)
    }

    /// A Lambda function name, partial or full ARN.
    pub(super) fn function_name(&self, path: &str, value: Value) -> Result<String, PlatformAppSpecError> {
        let name = self.text(path, value)?;
        if name.chars().count() > FUNCTION_NAME_MAX {
            return Err(self.error(path, format!("is longer than {FUNCTION_NAME_MAX} characters")));
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_:.$".contains(*c))) {
            let message = format!("{name:?} contains {bad:?}; a function name or ARN has letters, digits and -_:.");
            return Err(self.error(path, message));
        }
        Ok(name)
    }

    /// A Lambda alias name: 1–128 of letters, digits, `-`, `_`, not only digits.
    pub(super) fn alias(&self, path: &str, value: Value) -> Result<String, PlatformAppSpecError> {
        let alias = self.text(path, value)?;
        if alias.chars().count() > ALIAS_MAX {
            return Err(self.error(path, format!("is longer than {ALIAS_MAX} characters")));
        }
        if let Some(bad) = alias.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_".contains(*c))) {
            return Err(self.error(path, format!("{alias:?} contains {bad:?}; an alias has letters, digits, - and _")));
        }
        if alias.chars().all(|c| c.is_ascii_digit()) {
            return Err(self.error(path, format!("{alias:?} is a version number, not an alias name")));
        }
        Ok(alias)
    }

    /// A function version: a positive integer, written as a number or a string.
    pub(super) fn version(&self, path: &str, value: Value) -> Result<u64, PlatformAppSpecError> {
        let parsed = match &value {
            Value::Number(number) => number.as_u64(),
            Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        };
        match parsed {
            Some(version) if version > 0 => Ok(version),
            _ => Err(self.error(path, format!("must be a published version number (1, 2, …), got {}", show(&value)))),
        }
    }

    /// A container port: a number in 1–65535.
    pub(super) fn port(&self, path: &str, value: Value) -> Result<u16, PlatformAppSpecError> {
        let port = match &value {
            Value::Number(number) => number.as_u64().and_then(|port| u16::try_from(port).ok()),
            _ => None,
        };
        match port {
            Some(port) if port > 0 => Ok(port),
            _ => Err(self.error(path, format!("must be a port number 1-65535, got {}", show(&value)))),
        }
    }

    /// Records a warning for every key of `mapping` not in `known` (without regard to case).
    pub(super) fn unknown_keys(&mut self, mapping: &Mapping, path: &str, known: &[&str]) {
        for key in mapping.keys() {
            let name = key.as_str().map_or_else(|| show(key), str::to_string);
            if !known.iter().any(|known| known.eq_ignore_ascii_case(&name)) {
                let at = if path.is_empty() { name } else { format!("{path}.{name}") };
                self.warnings.push(format!("AppSpec {at}: unknown key, ignored"));
            }
        }
    }

    /// `Hooks`: a list of single-key maps `event: function`, each event of the platform
    /// at most once; returned in the platform's run order.
    pub(super) fn hooks(&mut self, root: &Mapping) -> Result<Vec<Hook>, PlatformAppSpecError> {
        let Some(hooks) = lookup(root, "Hooks") else { return Ok(Vec::new()) };
        let items = match hooks {
            Value::Null => return Ok(Vec::new()),
            Value::Sequence(items) => items,
            other => {
                let message = format!("must be a list of `- Event: function` items, got {}", show(other));
                return Err(self.error("Hooks", message));
            }
        };
        let events = self.platform.hook_events();
        let mut found: Vec<Hook> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Value::Mapping(item) = item else {
                return Err(self.error(&format!("Hooks[{index}]"), "must be `Event: function`"));
            };
            for (key, value) in item {
                let name = key.as_str().unwrap_or_default();
                let path = format!("Hooks[{index}].{name}");
                let Some(event) = events.iter().find(|event| **event == name) else {
                    let message = format!("is not a hook event of this platform; use one of {}", events.join(", "));
                    return Err(self.error(&path, message));
                };
                if found.iter().any(|hook| hook.event == *event) {
                    return Err(self.error(&path, "is given twice; one function per event"));
                }
                let function_name = self.function_name(&path, value.clone())?;
                found.push(Hook { event, function_name });
            }
        }
        found.sort_by_key(|hook| events.iter().position(|event| *event == hook.event));
        Ok(found)
    }

    /// `NetworkConfiguration.AwsvpcConfiguration`, all or nothing.
    pub(super) fn network(
        &mut self,
        properties: &Mapping,
        base: &str,
    ) -> Result<Option<AwsVpcConfiguration>, PlatformAppSpecError> {
        let Some(network) = self.optional(properties, "NetworkConfiguration") else { return Ok(None) };
        let path = format!("{base}.NetworkConfiguration");
        let network = self.mapping(&path, network)?;
        let vpc_path = format!("{path}.AwsvpcConfiguration");
        let vpc = self.required(&network, &vpc_path)?;
        let vpc = self.mapping(&vpc_path, vpc)?;
        let subnets =
            self.strings(&format!("{vpc_path}.Subnets"), self.required(&vpc, &format!("{vpc_path}.Subnets"))?)?;
        if subnets.is_empty() {
            return Err(self.error(&format!("{vpc_path}.Subnets"), "must name at least one subnet"));
        }
        let security_groups = match self.optional(&vpc, "SecurityGroups") {
            Some(value) => self.strings(&format!("{vpc_path}.SecurityGroups"), value)?,
            None => Vec::new(),
        };
        let assign_public_ip = match self.optional(&vpc, "AssignPublicIp") {
            None => None,
            Some(Value::String(text)) if text == "ENABLED" => Some(true),
            Some(Value::String(text)) if text == "DISABLED" => Some(false),
            Some(other) => {
                let message = format!("must be ENABLED or DISABLED, got {}", show(&other));
                return Err(self.error(&format!("{vpc_path}.AssignPublicIp"), message));
            }
        };
        self.unknown_keys(&network, &path, &["AwsvpcConfiguration"]);
        self.unknown_keys(&vpc, &vpc_path, &["Subnets", "SecurityGroups", "AssignPublicIp"]);
        Ok(Some(AwsVpcConfiguration { subnets, security_groups, assign_public_ip }))
    }

    /// `CapacityProviderStrategy`: a list of `{CapacityProvider, Base, Weight}`.
    pub(super) fn capacity_providers(
        &mut self,
        properties: &Mapping,
        base: &str,
    ) -> Result<Vec<CapacityProviderItem>, PlatformAppSpecError> {
        let Some(strategy) = self.optional(properties, "CapacityProviderStrategy") else { return Ok(Vec::new()) };
        let path = format!("{base}.CapacityProviderStrategy");
        let Value::Sequence(items) = strategy else {
            return Err(self.error(&path, format!("must be a list, got {}", show(&strategy))));
        };
        let mut strategy = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let at = format!("{path}[{index}]");
            let item = self.mapping(&at, item)?;
            let provider = self.required(&item, &format!("{at}.CapacityProvider"))?;
            let capacity_provider = self.text(&format!("{at}.CapacityProvider"), provider)?;
            let count = |key: &str| {
                let Some(value) = self.optional(&item, key) else { return Ok(0) };
                let count =
                    value.as_u64().and_then(|count| u32::try_from(count).ok()).filter(|count| *count <= 100_000);
                count.ok_or_else(|| {
                    self.error(&format!("{at}.{key}"), format!("must be 0-100000, got {}", show(&value)))
                })
            };
            strategy.push(CapacityProviderItem { capacity_provider, base: count("Base")?, weight: count("Weight")? });
            self.unknown_keys(&item, &at, &["CapacityProvider", "Base", "Weight"]);
        }
        Ok(strategy)
    }

    /// A list of non-empty strings.
    fn strings(&self, path: &str, value: Value) -> Result<Vec<String>, PlatformAppSpecError> {
        let Value::Sequence(items) = value else {
            return Err(self.error(path, format!("must be a list of strings, got {}", show(&value))));
        };
        items.into_iter().enumerate().map(|(index, item)| self.text(&format!("{path}[{index}]"), item)).collect()
    }
}

/// A value as the error messages quote it: short, one line.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Null => "nothing".to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        other => serde_norway::to_string(other).map_or_else(|_| "?".to_string(), |text| text.trim().to_string()),
    };
    text.chars().take(80).collect()
}
