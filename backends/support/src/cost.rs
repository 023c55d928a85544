//! Cost-model constants: each chip declares its table once ([`cost_table!`]) — name, value, unit
//! and source of every constant — and reports, override files (`--chip-params`) and the
//! emulators all read that one declaration.

/// A cost-model constant with its unit and where the number comes from ("assumed" where no public
/// figure exists), so reports can show which numbers to distrust.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// Value in `unit`.
    pub value: f64,
    /// Unit, e.g. "ns/op".
    pub unit: &'static str,
    /// Source (a document section or URL) or "assumed: why".
    pub source: &'static str,
}

/// A chip's table of named constants (implemented by [`cost_table!`]).
pub trait CostTable {
    /// Every constant with its name, in declaration order.
    fn entries(&self) -> Vec<(&'static str, Cost)>;
    /// The constant called `name`, for overrides; `None` for unknown names.
    fn get_mut(&mut self, name: &str) -> Option<&mut Cost>;

    /// Applies overrides; an unknown name is an error listing the known ones.
    fn apply(&mut self, target: &str, params: &ChipParams) -> Result<(), UnknownCost> {
        for (name, value) in &params.values {
            if self.get_mut(name).is_none() {
                return Err(UnknownCost {
                    target: target.to_string(),
                    name: name.clone(),
                    known: self
                        .entries()
                        .iter()
                        .map(|e| e.0)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if let Some(c) = self.get_mut(name) {
                c.value = *value;
            }
        }
        Ok(())
    }

    /// The constants for `nmc targets --params`.
    fn params(&self) -> Vec<CostParam> {
        self.entries()
            .into_iter()
            .map(|(name, c)| CostParam {
                name: name.to_string(),
                value: c.value,
                unit: c.unit.to_string(),
                source: c.source.to_string(),
            })
            .collect()
    }
}

/// An override names a constant the chip does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {target} cost constant `{name}` (known: {known})")]
pub struct UnknownCost {
    /// Target name.
    pub target: String,
    /// The unknown name.
    pub name: String,
    /// The names the chip has, comma-separated.
    pub known: String,
}

/// Declares a chip's cost table: a struct with one public [`Cost`] field per constant, and its
/// [`CostTable`] implementation (names in declaration order), so that each constant is spelt once.
#[macro_export]
macro_rules! cost_table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $crate::Cost, )*
        }

        impl $crate::CostTable for $name {
            fn entries(&self) -> Vec<(&'static str, $crate::Cost)> {
                vec![ $( (stringify!($field), self.$field), )* ]
            }
            fn get_mut(&mut self, name: &str) -> Option<&mut $crate::Cost> {
                match name {
                    $( stringify!($field) => Some(&mut self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

/// Overrides of a target's cost-model constants (`--chip-params file.toml`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChipParams {
    /// Constant name and new value, in file order.
    pub values: Vec<(String, f64)>,
}

/// One cost-model constant, for `nmc targets --params`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CostParam {
    /// Name (as in override files).
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Where the number comes from, or "assumed".
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::cost_table! {
        /// Two constants.
        pub struct Two {
            /// First.
            a,
            /// Second.
            b,
        }
    }

    fn two() -> Two {
        let c = |value| Cost {
            value,
            unit: "ns",
            source: "assumed",
        };
        Two {
            a: c(1.0),
            b: c(2.0),
        }
    }

    #[test]
    fn table_lists_overrides_and_rejects_unknown_names() {
        let mut t = two();
        assert_eq!(
            t.entries().iter().map(|e| e.0).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let p = ChipParams {
            values: vec![("b".into(), 5.0)],
        };
        t.apply("x", &p).unwrap();
        assert_eq!(t.b.value, 5.0);
        let bad = ChipParams {
            values: vec![("c".into(), 1.0)],
        };
        assert_eq!(
            t.apply("x", &bad).unwrap_err().to_string(),
            "unknown x cost constant `c` (known: a, b)"
        );
    }
}
