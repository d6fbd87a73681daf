//! `gegevensdienst add | update | remove | show | list`: the Gegevensdienstnamenlijst.

use super::entity::{existing, insert_new, remove, show};
use super::Ctx;
use crate::registry::model::Gegevensdienstnaam;
use crate::registry::store::Scope;
use anyhow::Result;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum GegevensdienstOp {
    Add { id: String, weergavenaam: String },
    Update { id: String, weergavenaam: String },
    Remove { id: String },
    Show { id: String },
    List,
}

impl GegevensdienstOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        const KIND: &str = "Gegevensdienst";
        let msg = match self {
            GegevensdienstOp::Add { id, weergavenaam } => {
                ctx.store
                    .update_rows(&ctx.who, &Scope::small_tables(), |reg| {
                        let g = Gegevensdienstnaam {
                            gegevensdienst_id: id.clone(),
                            weergavenaam,
                        };
                        insert_new(&mut reg.gegevensdiensten, KIND, &id, "gegevensdienst", g)?;
                        Ok(format!("added Gegevensdienst {id}"))
                    })?
            }
            GegevensdienstOp::Update { id, weergavenaam } => {
                ctx.store
                    .update_rows(&ctx.who, &Scope::small_tables(), |reg| {
                        existing(&mut reg.gegevensdiensten, KIND, &id)?.weergavenaam = weergavenaam;
                        Ok(format!("updated Gegevensdienst {id}"))
                    })?
            }
            // Whole: every Zorgaanbieder and OAuthclient that refers to it must be checked.
            GegevensdienstOp::Remove { id } => ctx.store.update(&ctx.who, |reg| {
                remove(&mut reg.gegevensdiensten, KIND, &id)?;
                Ok(format!("removed Gegevensdienst {id}"))
            })?,
            GegevensdienstOp::Show { id } => show(
                &ctx.store.rows(&Scope::small_tables())?.gegevensdiensten,
                KIND,
                &id,
            )?,
            GegevensdienstOp::List => ctx
                .store
                .rows(&Scope::small_tables())?
                .gegevensdiensten_ordered()
                .iter()
                .map(|g| format!("{:>4}  {}", g.gegevensdienst_id, g.weergavenaam))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Ok(format!("{msg}\n"))
    }
}
