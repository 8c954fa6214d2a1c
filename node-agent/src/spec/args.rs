//! The process argv: Kubernetes' command/args over the image's Entrypoint/Cmd.
//!
//! | command | args | argv                |
//! |---------|------|---------------------|
//! | -       | -    | Entrypoint + Cmd    |
//! | set     | -    | command             |
//! | -       | set  | Entrypoint + args   |
//! | set     | set  | command + args      |
//!
//! command and args are `$(VAR)`-expanded against kubelet's env list first; the image parts
//! are taken as they are.

use k8s_openapi::api::core::v1::Container;

use super::expand::expand;
use super::{ImageDefaults, SpecError};

/// The argv of `container`, `env` being its kubelet env list (used for expansion).
pub fn process_args(
    container: &Container,
    image: &ImageDefaults,
    env: &[(String, String)],
) -> Result<Vec<String>, SpecError> {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let command: Vec<String> = container.command.iter().flatten().map(|s| expand(s, lookup)).collect();
    let args: Vec<String> = container.args.iter().flatten().map(|s| expand(s, lookup)).collect();
    let (command, args) = if command.is_empty() {
        let args = if args.is_empty() { image.cmd.clone() } else { args };
        // An Entrypoint of [""] is Docker's way to clear it.
        let entrypoint = if image.entrypoint.len() == 1 && image.entrypoint[0].is_empty() {
            Vec::new()
        } else {
            image.entrypoint.clone()
        };
        (entrypoint, args)
    } else {
        (command, args)
    };
    let argv: Vec<String> = command.into_iter().chain(args).collect();
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["img-cmd".into()],
            ..Default::default()
        }
    }

    fn container(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Container {
            name: "c".into(),
            command: command.map(own),
            args: args.map(own),
            ..Default::default()
        }
    }

    /// (command, args, expected argv)
    type Case<'a> = (Option<&'a [&'a str]>, Option<&'a [&'a str]>, &'a [&'a str]);

    #[test]
    fn fallback_table() {
        let cases: [Case; 5] = [
            (None, None, &["/entry", "img-cmd"]),
            (Some(&["/bin/cmd"]), None, &["/bin/cmd"]),
            (None, Some(&["a1", "a2"]), &["/entry", "a1", "a2"]),
            (Some(&["/bin/cmd"]), Some(&["a1"]), &["/bin/cmd", "a1"]),
            (Some(&[]), Some(&[]), &["/entry", "img-cmd"]),
        ];
        for (command, args, want) in cases {
            let got = process_args(&container(command, args), &image(), &[]).unwrap();
            assert_eq!(got, want, "command {command:?} args {args:?}");
        }
    }

    #[test]
    fn expansion_in_command_and_args() {
        let env = vec![("NAME".to_string(), "world".to_string())];
        let c = container(Some(&["echo", "$(NAME)"]), Some(&["$$(NAME)", "$(OTHER)"]));
        assert_eq!(
            process_args(&c, &image(), &env).unwrap(),
            ["echo", "world", "$(NAME)", "$(OTHER)"]
        );
    }

    #[test]
    fn empty_entrypoint_and_nothing_to_run() {
        let img = ImageDefaults {
            entrypoint: vec![String::new()],
            cmd: vec!["sh".into()],
            ..Default::default()
        };
        assert_eq!(process_args(&container(None, None), &img, &[]).unwrap(), ["sh"]);
        let none = ImageDefaults::default();
        assert!(matches!(
            process_args(&container(None, None), &none, &[]),
            Err(SpecError::NoCommand)
        ));
    }
}
