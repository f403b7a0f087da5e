package ctl

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Shell completion: the scripts ask bulwarkctl itself what may come next,
// by running the command line typed so far with --generate-bash-completion
// (urfave/cli answers with the subcommands, or with the flags when the
// word being completed starts with "-").

const bashCompletion = `# bash completion for bulwarkctl.
# Load it now:  source <(bulwarkctl completion bash)
# or for good:  bulwarkctl completion bash > /etc/bash_completion.d/bulwarkctl
_bulwarkctl() {
    # The line up to the cursor, split on blanks only: --api values hold
    # ':', which bash's own word splitting (COMP_WORDS) cuts up.
    local line="${COMP_LINE:0:COMP_POINT}" cur="" opts
    local -a words
    read -ra words <<< "$line"
    if [[ "$line" != *[[:space:]] && ${#words[@]} -gt 1 ]]; then
        cur="${words[${#words[@]}-1]}"
        unset 'words[${#words[@]}-1]'
    fi
    if [[ "$cur" == -* ]]; then
        opts=$("${words[0]}" "${words[@]:1}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        opts=$("${words[0]}" "${words[@]:1}" --generate-bash-completion 2>/dev/null)
    fi
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -F _bulwarkctl bulwarkctl
`

const zshCompletion = `#compdef bulwarkctl
# zsh completion for bulwarkctl.
# Load it now:  source <(bulwarkctl completion zsh)
# or for good:  bulwarkctl completion zsh > "${fpath[1]}/_bulwarkctl"
_bulwarkctl() {
  local -a opts
  local cur=${words[CURRENT]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${opts[1]}" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
if [[ "${funcstack[1]}" == "_bulwarkctl" ]]; then
  _bulwarkctl "$@"
else
  compdef _bulwarkctl bulwarkctl
fi
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: `Prints a script that makes the shell complete bulwarkctl's commands,
subcommands and flags (type "bulwarkctl no<TAB>", "bulwarkctl node list --<TAB>").
The script asks bulwarkctl itself what may come next, so it always matches
the installed version.

bash (needs bash 4.3 or later):
   source <(bulwarkctl completion bash)                          # this shell
   bulwarkctl completion bash > /etc/bash_completion.d/bulwarkctl  # every shell

zsh (after compinit):
   source <(bulwarkctl completion zsh)                            # this shell
   bulwarkctl completion zsh > "${fpath[1]}/_bulwarkctl"          # every shell

Examples:
   bulwarkctl completion bash
   bulwarkctl completion zsh`,
		Action: leaf(completion),
	}
}

func completion(c *cli.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("name the shell: bash or zsh (usage: %s)", usageLine(c))
	}
	switch args[0] {
	case "bash":
		_, err := fmt.Fprint(c.App.Writer, bashCompletion)
		return err
	case "zsh":
		_, err := fmt.Fprint(c.App.Writer, zshCompletion)
		return err
	}
	return fmt.Errorf("unknown shell %q: bulwarkctl completes bash and zsh (usage: %s)", args[0], usageLine(c))
}
