//! The IR text of a module: the CLIF of every compiled function, with module function ids
//! replaced by the functions' names.

use super::ModuleBuilder;
use cranelift_module::Module;
use std::collections::HashMap;

impl ModuleBuilder<'_> {
    /// The CLIF text of every function, external names replaced by symbols.
    pub fn ir_text(&self) -> String {
        let names: HashMap<u32, String> = self
            .module
            .declarations()
            .get_functions()
            .filter_map(|(id, decl)| decl.name.clone().map(|n| (id.as_u32(), n)))
            .collect();
        self.ir.iter().map(|f| rename_externals(f, &names)).collect::<Vec<_>>().join("\n")
    }
}

/// Replaces each `u0:N` (a module function id in CLIF text) by `%name`.
fn rename_externals(text: &str, names: &HashMap<u32, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("u0:") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 3..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<u32>().ok().and_then(|n| names.get(&n)) {
            Some(name) => {
                out.push('%');
                out.push_str(name);
            }
            None => out.push_str(&rest[pos..pos + 3 + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}
