//! xddctl: the dom0 control plane of xdd — driver domains first, guests after.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use xdd_control::appliance::{Appliance, RealFiles, DEFAULT_PATH};
use xdd_control::down::Devices;
use xdd_control::pci::Sysfs;
use xdd_control::timeline::Timeline;
use xdd_control::xl::Xl;
use xdd_control::{check, down, install, logger, passthrough, status, supervise, up, usb};

/// Starts Xen driver domains before the guests that need them, and stops them afterwards.
#[derive(Parser)]
#[command(name = "xddctl", version)]
struct Cli {
    /// The appliance file (TOML).
    #[arg(short, long, global = true, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// More messages on stderr (-v: info, -vv: debug, e.g. every xl command).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the appliance file and print the start and stop order; starts nothing.
    Check,
    /// Start the driver domains in dependency order, then each guest once its backends are
    /// ready; on failure, destroy what this command started.
    Up,
    /// Stop the guests, then the driver domains in reverse dependency order.
    Down {
        /// Then hand the driver domains' PCI devices back to dom0 (default: they stay
        /// assignable, so no dom0 driver takes them).
        #[arg(long)]
        release_devices: bool,
    },
    /// Show every domain: role, state, readiness, backends with xenbus states, memory, uptime.
    Status,
    /// `up`, then stay up: restart driver domains that die and re-attach their devices.
    Run,
    /// USB devices on guests' PVUSB controllers served by driver domains.
    Usb {
        #[command(subcommand)]
        command: UsbCommand,
    },
    /// Install the images, the appliance file, xddctl and the systemd unit.
    Install {
        /// Directory holding the images (`<name>.elf` or `<name>`); default: already in place.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Root of the target filesystem.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Do not copy this xddctl to /usr/sbin/xddctl.
        #[arg(long)]
        no_binary: bool,
    },
}

#[derive(Subcommand)]
enum UsbCommand {
    /// Every port of every controller a driver domain serves, and the device on it.
    List,
    /// Give a device (its bus path on the driver domain's host controller, e.g. 1-2) to a
    /// guest's controller (hot: the guest sees it plugged in).
    Attach {
        /// The guest.
        guest: String,
        /// The device's bus path.
        device: String,
        /// The controller's devid (default: the guest's lowest).
        #[arg(long)]
        controller: Option<u32>,
        /// The port (default: the first free one).
        #[arg(long)]
        port: Option<u8>,
    },
    /// Take a device back from a guest (hot: the guest sees it unplugged).
    Detach {
        /// The guest.
        guest: String,
        /// The device's bus path.
        device: String,
    },
}

fn main() {
    let cli = Cli::parse();
    logger::init(cli.verbose);
    if let Err(e) = execute(&cli) {
        eprintln!("xddctl: error: {e}");
        std::process::exit(1);
    }
}

fn load(cli: &Cli) -> Result<Appliance, String> {
    Appliance::load(&cli.config, &RealFiles)
}

/// Claims the appliance's PCI devices (resolved in dom0, held by no other domain): what
/// `check`, `up` and `run` verify before anything starts.
fn claim(mut app: Appliance, xl: &Xl) -> Result<Appliance, String> {
    passthrough::claim(&mut app, &Sysfs::dom0(), xl)?;
    Ok(app)
}

fn execute(cli: &Cli) -> Result<(), String> {
    match &cli.command {
        Command::Check => {
            let mut app = load(cli)?;
            if app.domains.iter().any(|d| !d.owns.is_empty()) {
                app = claim(app, &Xl::new()?)?;
            }
            print!("{}", check::describe(&app));
            Ok(())
        }
        Command::Up => {
            let app = load(cli)?;
            let xl = Xl::new()?;
            up::up(&claim(app, &xl)?, &xl, &Timeline::stdout())
        }
        Command::Down { release_devices } => {
            let mut app = load(cli)?;
            let devices = if *release_devices {
                passthrough::resolve(&mut app, &Sysfs::dom0())?;
                Devices::Release
            } else {
                Devices::Keep
            };
            down::down(&app, &Xl::new()?, &Timeline::stdout(), devices)
        }
        Command::Status => {
            let app = match load(cli) {
                Ok(a) => Some(a),
                Err(e) => {
                    log::warn!("{e}; showing domains without their roles");
                    None
                }
            };
            let rows = status::gather(app.as_ref(), &Xl::new()?)?;
            print!("{}", status::render(&rows));
            Ok(())
        }
        Command::Run => {
            let app = load(cli)?;
            let xl = Xl::new()?;
            supervise::run(&claim(app, &xl)?, &xl, &Timeline::stdout())
        }
        Command::Usb { command } => {
            let xl = Xl::new()?;
            match command {
                UsbCommand::List => print!("{}", usb::render(&usb::list(&xl)?)),
                UsbCommand::Attach {
                    guest,
                    device,
                    controller,
                    port,
                } => println!("{}", usb::attach(&xl, guest, device, *controller, *port)?),
                UsbCommand::Detach { guest, device } => {
                    println!("{}", usb::detach(&xl, guest, device)?)
                }
            }
            Ok(())
        }
        Command::Install {
            images,
            root,
            no_binary,
        } => {
            let me = std::env::current_exe().map_err(|e| format!("where am I? {e}"))?;
            let done = install::install(&install::Install {
                config: &cli.config,
                images: images.as_deref(),
                root,
                binary: (!no_binary).then_some(me.as_path()),
            })?;
            for line in done {
                println!("installed {line}");
            }
            println!(
                "next: systemctl daemon-reload && systemctl enable --now xdd \
                 (or: xddctl up / xddctl down by hand)"
            );
            Ok(())
        }
    }
}
