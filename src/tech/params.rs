//! The technology library: process nodes, transistor architectures ("devices"), the block-model
//! constants, and the layout a block is built with. Values come from `arch/tech/*.toml` (through
//! [`crate::config::load_tech_library`]); every number is cited there.

/// A process node: geometry, native-device electricals, SRAM and wafer economics.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name (`n5`).
    pub name: String,
    /// The transistor architecture the node's published figures were measured with.
    pub native_device: String,
    /// Logic transistor density of the native device at full cell utilization, MTr/mm².
    pub logic_density: f64,
    /// 6T SRAM bit-cell area, µm².
    pub sram_bitcell_um2: f64,
    /// Bit cells over macro area (periphery, sense amplifiers, redundancy).
    pub sram_array_efficiency: f64,
    /// Minimum routing track pitch (M1–M3), µm.
    pub metal_pitch_um: f64,
    /// Supply voltage, V.
    pub vdd: f64,
    /// Fan-out-of-4 inverter delay of the native device, s.
    pub fo4: f64,
    /// Input capacitance of an average cell input, native device, F.
    pub gate_cap: f64,
    /// Wire resistance per µm on the minimum-pitch layers, Ω/µm.
    pub wire_r_per_um: f64,
    /// Wire capacitance per µm on the minimum-pitch layers, F/µm.
    pub wire_c_per_um: f64,
    /// Leakage power per transistor at nominal voltage and temperature, W.
    pub leakage_per_transistor: f64,
    /// Energy to read one SRAM bit (array and periphery), J.
    pub sram_read_energy_per_bit: f64,
    /// Processed 300 mm wafer cost, USD.
    pub wafer_cost_usd: f64,
    /// Random defect density, defects per mm².
    pub defect_density_per_mm2: f64,
}

/// A transistor architecture, relative to FinFET at the same node pitches.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The device's name (`ffet`).
    pub name: String,
    /// Standard-cell height in routing tracks.
    pub tracks: f64,
    /// Post-place-and-route cell area relative to a FinFET cell at the same pitches.
    pub cell_area: f64,
    /// Drive current relative to FinFET (gate delay scales as cap ÷ drive).
    pub drive: f64,
    /// Cell input and internal capacitance relative to FinFET.
    pub cap: f64,
    /// Whether cells have input pins on both wafer sides (Flip FET); without them a layout
    /// cannot route signals on the back side.
    pub dual_sided_pins: bool,
}

/// The block-model constants (`arch/tech/model.toml`, `[model]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    /// Rent exponent of the logic (Landman–Russo; 0.5–0.75 for logic blocks).
    pub rent_exponent: f64,
    /// Net-length constant k: average net length = k·N^(p−½) placement pitches (Donath); sets
    /// the routing demand.
    pub net_length_constant: f64,
    /// The same for the net a critical-path stage drives (longer than the average net); sets
    /// the wire share of the stage delay.
    pub stage_wire_constant: f64,
    /// Fraction of the routing tracks that carry wires (vias, blockages, detours).
    pub routing_efficiency: f64,
    /// Detour of the critical stage's net with congestion: × (1 + d·ρ²).
    pub detour_coefficient: f64,
    /// Local pin-access wire growth with the pin density per routing site (per side).
    pub pin_access_coefficient: f64,
    /// Extra wire capacitance of a net whose sinks lie on both sides (two trees, not one).
    pub cross_side_overhead: f64,
    /// Cells of the largest place-and-route partition: a larger block is built of partitions,
    /// and Rent's rule applies within one (wires between partitions are few and buffered).
    pub partition_cells: f64,
    /// Transistors per standard cell (a NAND2 equivalent has 4).
    pub transistors_per_cell: f64,
    /// Input pins per cell.
    pub pins_per_cell: f64,
    /// Sinks per net.
    pub fanout: f64,
    /// Contacted poly pitch over track pitch (the width of one placement site in tracks).
    pub site_width_tracks: f64,
    /// Highest placement utilization with front-side power rails.
    pub max_utilization: f64,
    /// Highest placement utilization with backside power.
    pub max_utilization_backside_power: f64,
    /// Share of the lowest front-side tracks that power rails take when power is on the front.
    pub power_rail_track_share: f64,
    /// Pitch of each routing layer (bottom up) in units of the minimum pitch.
    pub layer_pitch: Vec<f64>,
}

/// Which sides of the wafer carry signal wires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalSides {
    /// Signals on the front side only.
    Front,
    /// Signals on both sides (Flip FET).
    Both,
}

/// How a block is laid out: routing layers per side, pin split, power delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Which sides carry signals.
    pub sides: SignalSides,
    /// Signal routing layers on the front.
    pub front_layers: u32,
    /// Signal routing layers on the back (0 when single-sided).
    pub back_layers: u32,
    /// Share of the cells' input pins on the front side (1 when single-sided).
    pub front_pin_share: f64,
    /// Whether power is delivered from the back side (frees the front power rails' tracks).
    pub backside_power: bool,
}

impl Layout {
    /// Signals on the front only, `layers` routing layers, power on the front.
    pub fn single_sided(layers: u32) -> Self {
        Layout {
            sides: SignalSides::Front,
            front_layers: layers,
            back_layers: 0,
            front_pin_share: 1.0,
            backside_power: false,
        }
    }

    /// Signals on both sides, `layers` on each, `front_pin_share` of the input pins on the front.
    pub fn dual_sided(layers: u32, front_pin_share: f64) -> Self {
        Layout {
            sides: SignalSides::Both,
            front_layers: layers,
            back_layers: layers,
            front_pin_share,
            backside_power: false,
        }
    }

    /// What is impossible about this layout for `device`, if anything.
    pub fn check(&self, device: &Device, max_layers: usize) -> Result<(), LayoutError> {
        if self.front_layers == 0 {
            return Err(LayoutError::NoFrontLayer);
        }
        if !(0.0..=1.0).contains(&self.front_pin_share) {
            return Err(LayoutError::PinShareOutOfRange {
                share: self.front_pin_share,
            });
        }
        let layers = self.front_layers.max(self.back_layers) as usize;
        if layers > max_layers {
            return Err(LayoutError::TooManyLayers { layers, max_layers });
        }
        if self.sides == SignalSides::Both {
            if self.back_layers == 0 {
                return Err(LayoutError::NoBackLayer);
            }
            if !device.dual_sided_pins {
                return Err(LayoutError::FrontPinsOnly {
                    device: device.name.clone(),
                });
            }
        } else if self.front_pin_share < 1.0 {
            return Err(LayoutError::SingleSidedPinShare);
        }
        Ok(())
    }
}

/// Why a [`Layout`] cannot be built with a device and a layer stack.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    /// No routing layer on the front side.
    #[error("a layout needs at least one front-side routing layer")]
    NoFrontLayer,
    /// The front pin share is not a fraction (or is NaN).
    #[error("the front pin share must lie in 0..=1, found {share}")]
    PinShareOutOfRange {
        /// The share as given.
        share: f64,
    },
    /// More routing layers on one side than the layer stack has.
    #[error("{layers} routing layers per side, but the layer stack has {max_layers}")]
    TooManyLayers {
        /// Layers on the fuller side.
        layers: usize,
        /// Layers in the stack (`layer_pitch` of the model).
        max_layers: usize,
    },
    /// Dual-sided signals with no back-side routing layer.
    #[error("dual-sided signals need at least one back-side routing layer")]
    NoBackLayer,
    /// Dual-sided signals with a device whose cells have pins on the front only.
    #[error(
        "dual-sided signals need cells with pins on both sides; `{device}` has them on the \
         front only"
    )]
    FrontPinsOnly {
        /// The device's name.
        device: String,
    },
    /// Single-sided signals with some input pins on the back.
    #[error("single-sided signals put every input pin on the front (share 1)")]
    SingleSidedPinShare,
}

/// Why [`Library::technology`] cannot give a technology.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TechnologyError {
    /// The node is not in the library.
    #[error("unknown node `{node}`; valid: {valid}")]
    UnknownNode {
        /// The name asked for.
        node: String,
        /// The library's node names, comma-separated.
        valid: String,
    },
    /// The device is not in the library.
    #[error("unknown device `{device}`; valid: {valid}")]
    UnknownDevice {
        /// The name asked for.
        device: String,
        /// The library's device names, comma-separated.
        valid: String,
    },
    /// The node's native device is not in the library.
    #[error("node `{node}` names an unknown native device `{device}`")]
    UnknownNativeDevice {
        /// The node's name.
        node: String,
        /// The native device it names.
        device: String,
    },
    /// The layout is impossible for the device or the layer stack.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Everything read from the technology files.
#[derive(Debug, Clone, PartialEq)]
pub struct Library {
    /// The process nodes.
    pub nodes: Vec<Node>,
    /// The transistor architectures.
    pub devices: Vec<Device>,
    /// The block-model constants.
    pub model: ModelParams,
}

/// A node, a device and a layout, looked up in a [`Library`].
#[derive(Debug, Clone, Copy)]
pub struct Technology<'a> {
    /// The process node.
    pub node: &'a Node,
    /// The transistor architecture.
    pub device: &'a Device,
    /// The layout.
    pub layout: Layout,
    /// The block-model constants.
    pub model: &'a ModelParams,
    /// The node's native device (its published figures were measured with it).
    pub native: &'a Device,
}

impl Library {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The device named `name`.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Every node's name, in the library's order.
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Every device's name, in the library's order.
    pub fn device_names(&self) -> Vec<&str> {
        self.devices.iter().map(|d| d.name.as_str()).collect()
    }

    /// The technology `node` × `device` × `layout`; an error names what is unknown or impossible.
    pub fn technology(
        &self,
        node: &str,
        device: &str,
        layout: Layout,
    ) -> Result<Technology<'_>, TechnologyError> {
        let n = self
            .node(node)
            .ok_or_else(|| TechnologyError::UnknownNode {
                node: node.to_owned(),
                valid: self.node_names().join(", "),
            })?;
        let d = self
            .device(device)
            .ok_or_else(|| TechnologyError::UnknownDevice {
                device: device.to_owned(),
                valid: self.device_names().join(", "),
            })?;
        let native =
            self.device(&n.native_device)
                .ok_or_else(|| TechnologyError::UnknownNativeDevice {
                    node: n.name.clone(),
                    device: n.native_device.clone(),
                })?;
        layout.check(d, self.model.layer_pitch.len())?;
        Ok(Technology {
            node: n,
            device: d,
            layout,
            model: &self.model,
            native,
        })
    }
}

impl Technology<'_> {
    /// Area of one transistor at full cell utilization, µm².
    pub fn transistor_area_um2(&self) -> f64 {
        (1.0 / self.node.logic_density) * self.device.cell_area / self.native.cell_area
    }

    /// `node/device` with `/ds` or `/ss` and the layer count, e.g. `n2/ffet/ds5`.
    pub fn label(&self) -> String {
        let l = &self.layout;
        match l.sides {
            SignalSides::Front => format!(
                "{}/{}/ss{}",
                self.node.name, self.device.name, l.front_layers
            ),
            SignalSides::Both => format!(
                "{}/{}/ds{}+{}",
                self.node.name, self.device.name, l.front_layers, l.back_layers
            ),
        }
    }
}
