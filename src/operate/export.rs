//! `export --release R --out DIR`: the published lists of one release, with their
//! signatures and the certificate, as files.

use super::Ctx;
use crate::registry::model::ListKind;
use crate::registry::publication::document_key;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Export {
    pub release: String,
    pub out: PathBuf,
}

impl Export {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let mut out = String::new();
        let index = ctx
            .store
            .published()?
            .ok_or_else(|| anyhow!("nothing has been published yet"))?;
        let release = index
            .catalogue
            .get(&self.release)
            .ok_or_else(|| {
                anyhow!(
                    "release '{}' is not in the catalogue (known: {})",
                    self.release,
                    index
                        .catalogue
                        .releases
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
            .clone();
        if release.status == crate::registry::catalogue::Status::Ingetrokken {
            bail!(
                "release '{}' is ingetrokken; it has no served lists",
                release.id
            );
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        for list in ListKind::ALL {
            let r = release.rendition(list);
            let pr = index
                .renditions
                .iter()
                .find(|p| p.rendition == r)
                .ok_or_else(|| anyhow!("{r} is not published"))?;
            let key = document_key(&r, pr.volgnummer);
            let xml = ctx
                .store
                .document(&key)?
                .ok_or_else(|| anyhow!("{key} missing"))?;
            let sig = ctx
                .store
                .document(&format!("{key}.sig"))?
                .ok_or_else(|| anyhow!("{key}.sig missing"))?;
            let path = self.out.join(list.file_name());
            std::fs::write(&path, &xml).with_context(|| format!("writing {}", path.display()))?;
            let sig_path = self.out.join(format!("{}.sig", list.file_name()));
            std::fs::write(&sig_path, &sig)
                .with_context(|| format!("writing {}", sig_path.display()))?;
            writeln!(
                out,
                "wrote {} ({r}, Volgnummer {})",
                path.display(),
                pr.volgnummer
            )?;
        }
        let cert = crate::sign::keyring::signers(ctx.store, ctx.data)?
            .active
            .cert_pem;
        std::fs::write(self.out.join("signing-certificate.pem"), cert)?;
        Ok(out)
    }
}
