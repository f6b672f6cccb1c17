//! `.volume` units: the `[Volume]` section with the keys we use, from podman-systemd.unit(5).
//! Quadlet generates `<name>-volume.service`, a oneshot that runs `podman volume create
//! --ignore` (so it never touches an existing volume's data).

use crate::container::Label;
use crate::error::Error;
use crate::systemd::{InstallSection, UnitSection};
use crate::value;
use crate::writer::{self, Section};

/// A whole `.volume` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUnit {
    pub unit: UnitSection,
    pub volume: VolumeSection,
    /// Usually `None`: a container's `Volume=<name>.volume` already pulls the volume's service
    /// in with `Requires=`/`After=`.
    pub install: Option<InstallSection>,
}

impl VolumeUnit {
    /// The unit text, or the first value that cannot be written safely.
    pub fn render(&self) -> Result<String, Error> {
        let mut sections = vec![self.unit.write()?, self.volume.write()?];
        if let Some(install) = &self.install {
            sections.push(install.write()?);
        }
        Ok(writer::render(&sections))
    }
}

/// `[Volume]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSection {
    /// `VolumeName=`: the Podman volume's name; Quadlet's default is `systemd-<name>`.
    pub volume_name: Option<String>,
    /// `Label=`: labels on the volume (`--label`), `key=value` items.
    pub labels: Vec<Label>,
}

impl VolumeSection {
    fn write(&self) -> Result<Section, Error> {
        let mut s = Section::required("Volume");
        if let Some(name) = &self.volume_name {
            value::check_name("VolumeName", name)?;
            s.raw("VolumeName", name)?;
        }
        for label in &self.labels {
            value::check_label_key("Label", &label.key)?;
            s.words("Label", &[format!("{}={}", label.key, label.value)])?;
        }
        Ok(s)
    }
}
