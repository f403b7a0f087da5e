package ctl

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

// defaultContainerMemory is the default --memory of `container run`
// (--cpus is 1).
const defaultContainerMemory = "128MiB"

// archivePrefix marks WorkloadSpec.Image as an OCI image archive on the
// hosts: "oci-archive:/abs/path.tar" (its first image) or
// "oci-archive:/abs/path.tar#REF" (the image REF in it), as the container
// driver reads it.
const archivePrefix = "oci-archive:"

func containerCommand() *cli.Command {
	return &cli.Command{
		Name:      "container",
		UsageText: "bulwarkctl container run NAME --image REF [options] [-- CMD ARGS...]",
		Aliases:   []string{"containers", "ctr"},
		Usage:     "run containers",
		Description: `Runs container workloads from command-line flags. To list, inspect or
delete containers use "bulwarkctl workload ...", which covers every kind
of workload; "bulwarkctl workload logs NAME" shows a container's output.

Examples:
   bulwarkctl container run web-1 --image docker.io/library/nginx:1.27
   bulwarkctl container run job-1 --image busybox:1.36 --restart never -- sh -c 'echo hello'`,
		Subcommands: []*cli.Command{containerRunCommand()},
	}
}

func containerRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a container workload",
		ArgsUsage: "NAME [-- CMD ARGS...]",
		Description: `Asks the cluster to run a container called NAME from an image. The
scheduler places it on a ready node that runs containers and has enough
free CPUs and memory; until then it is "pending", and
"bulwarkctl workload show NAME" says why. The host's container driver
fetches the image when it starts the container.

` + nameHelp + `
--image REF: the image, e.g. docker.io/library/nginx:1.27, busybox:1.36
      (docker.io/library/busybox:1.36) or registry.example/app@sha256:...
      The host uses its own copy if it has one and pulls it otherwise.
--image-archive PATH: take the image from an OCI image archive (a .tar
      as written by "docker save", "podman save" or "skopeo copy
      oci-archive:...") instead of a registry: no registry is needed.
      PATH must be absolute and readable on every host that may run the
      container (shared storage), e.g. /srv/images/app.tar. With --image
      too, REF names the image inside the archive; without, the archive's
      first image is used.
-- CMD ARGS...: everything after "--" is the command to run instead of
      the image's default, e.g. -- sh -c 'echo hello; sleep 60'.
--env NAME=VALUE: an environment variable; repeat the flag for several,
      e.g. --env LOG_LEVEL=debug --env 'GREETING=hello world'.
--cpus: 1 to 4096, default 1.
--memory: at least 64MiB, default ` + defaultContainerMemory + `. ` + memoryUnitsHelp + `
` + workloadFlagsHelp + `

` + sharedFlagsHelp + `
      A container gets each volume's file or device bind-mounted at
      /volumes/NAME; read-only for a shared-read volume.
--publish VIP:PORT:CONTAINERPORT[/PROTO]: forward PORT of the floating IP
      VIP to CONTAINERPORT of the container, wherever it runs; PROTO is tcp
      (the default) or udp. VIP must be one of the container's --vip
      addresses; write an IPv6 address in brackets. Repeat the flag for
      several, e.g. --publish 192.0.2.10:80:8080 --publish 192.0.2.10:53:5353/udp
      --publish [2001:db8::10]:443:8443

` + checkFlagsHelp(false) + `

The input is checked first; if it is invalid, nothing is sent to the server.

Examples:
   bulwarkctl container run web-1 --image docker.io/library/nginx:1.27 --memory 256MiB
   bulwarkctl container run web-2 --image-archive /srv/images/web.tar --image web:1.4
   bulwarkctl container run job-1 --image busybox:1.36 --restart never -- sh -c 'echo hello'
   bulwarkctl container run api-1 --image registry.example/api:2.0 --env PORT=8080 --env LOG_LEVEL=debug --label tier=api --anti-affinity api --spread-by rack
   bulwarkctl container run web-3 --image nginx:1.27 --vip 192.0.2.10 --publish 192.0.2.10:80:80 --volume web-content
   bulwarkctl container run web-4 --image nginx:1.27 --check http:80/ --check-interval 5s --check-failures 2
   bulwarkctl container run pg-1 --image postgres:16 --check 'exec:pg_isready -U postgres' --check-grace 2m
   bulwarkctl container run cache-1 --image redis:7 --cpus 2 --memory 1GiB --restart on-failure -o json`,
		// Every argument, flags and "--" included, goes to leafWithCommand,
		// which tells the command after "--" apart from the flags.
		SkipFlagParsing: true,
		Flags: withGlobal(append([]cli.Flag{
			&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "image `REF`, e.g. docker.io/library/nginx:1.27; with --image-archive, the image in the archive"},
			&cli.StringFlag{Name: "image-archive", Usage: "absolute `PATH` of an OCI image archive that every host can read, e.g. /srv/images/app.tar"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment variable `NAME=VALUE`; repeat for more"},
			&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "forward a port of a floating IP to the container: `VIP:PORT:CONTAINERPORT[/tcp|udp]`, e.g. 192.0.2.10:80:8080; repeat for more"},
		}, workloadFlags(defaultContainerMemory)...)...),
		Action: leafWithCommand(containerRun),
	}
}

func containerRun(c *cli.Context, args, command []string, dash bool) error {
	var name string
	switch {
	case len(args) == 0 && dash:
		return fmt.Errorf("missing NAME before \"--\" (usage: %s)", usageLine(c))
	case len(args) > 1:
		return fmt.Errorf("too many arguments %q: expected only NAME; give the command after \"--\", e.g. %s %s --image busybox:1.36 -- %s (usage: %s)",
			args, helpName(c), args[0], strings.Join(args[1:], " "), usageLine(c))
	}
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	spec, err := containerSpecFromFlags(c, name, command)
	if err != nil {
		return err
	}
	return createWorkload(c, "container", spec)
}

// containerSpecFromFlags builds and validates the spec, reporting every
// problem.
func containerSpecFromFlags(c *cli.Context, name string, command []string) (api.WorkloadSpec, error) {
	spec, flagErrs := specFromFlags(c, name, api.KindContainer)
	image, err := imageFromFlags(c)
	if err != nil {
		flagErrs = append(flagErrs, err)
	}
	spec.Image = image
	if len(command) > 0 {
		if strings.TrimSpace(command[0]) == "" {
			flagErrs = append(flagErrs, errors.New(`the command after "--" starts with an empty program name`))
		}
		spec.Command = command
	}
	for _, e := range c.StringSlice("env") {
		k, v, err := parseEnv(e)
		if err != nil {
			flagErrs = append(flagErrs, err)
			continue
		}
		if _, dup := spec.Env[k]; dup {
			flagErrs = append(flagErrs, fmt.Errorf("--env: %s is given twice", k))
			continue
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	// A bad --publish is reported here, in its own words, and left out of
	// the spec so that Validate does not repeat it.
	for _, p := range c.StringSlice("publish") {
		pub, err := api.ParsePublish(p)
		if err != nil {
			flagErrs = append(flagErrs, publishFlagError(p, err))
			continue
		}
		spec.Publish = append(spec.Publish, pub)
	}
	// A missing image is reported above with the flags to use; keep
	// Validate from repeating it.
	check := spec
	if check.Image == "" {
		check.Image = "-"
	}
	return spec, checkSpec("container", check, flagErrs)
}

// imageFromFlags returns the image reference of --image and
// --image-archive as the container driver reads it. The reference itself
// is checked by the driver, on the host; only what is plainly wrong is
// refused here.
func imageFromFlags(c *cli.Context) (string, error) {
	ref, archive := c.String("image"), c.String("image-archive")
	hasRef, hasArchive := c.IsSet("image"), c.IsSet("image-archive")
	if hasRef {
		if err := checkImageRef(ref); err != nil {
			return "", err
		}
	}
	if !hasArchive {
		if !hasRef {
			return "", errors.New("a container needs an image: give --image REF (e.g. --image docker.io/library/nginx:1.27) or --image-archive PATH")
		}
		return ref, nil
	}
	if err := checkArchivePath(archive); err != nil {
		return "", err
	}
	if strings.HasPrefix(ref, archivePrefix) {
		return "", fmt.Errorf("--image %q: with --image-archive, --image names the image inside the archive (e.g. --image web:1.4), or leave it out to use the archive's first image", ref)
	}
	image := archivePrefix + filepath.Clean(archive)
	if hasRef {
		image += "#" + ref
	}
	return image, nil
}

// checkImageRef refuses references that cannot name any image.
func checkImageRef(ref string) error {
	switch {
	case strings.TrimSpace(ref) == "":
		return errors.New("--image is empty: give an image reference such as docker.io/library/nginx:1.27")
	case strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '#' }) >= 0:
		return fmt.Errorf("--image %q: an image reference has no spaces, '#' or control characters", ref)
	}
	return nil
}

// checkArchivePath checks the --image-archive path: the hosts read it, so
// it must be absolute (a path relative to this shell means nothing there).
func checkArchivePath(p string) error {
	const hint = "give the absolute path of the archive as every host sees it, e.g. --image-archive /srv/images/app.tar"
	switch {
	case p == "":
		return errors.New("--image-archive is empty: " + hint)
	case !filepath.IsAbs(p):
		return fmt.Errorf("--image-archive %q is a relative path: the hosts, not this machine, read the archive; %s", p, hint)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("--image-archive %q names a directory; give the archive file, e.g. /srv/images/app.tar", p)
	case strings.Contains(p, "#"):
		return fmt.Errorf("--image-archive %q: the path may not hold '#', which separates the archive from the image name", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("--image-archive %q: the path has a control character", p)
	}
	return nil
}

// publishFlagError names the flag, and the value as typed, in an
// api.ParsePublish error, whose message starts with "publish" and the
// value or its address.
func publishFlagError(s string, err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, fmt.Sprintf("publish %q", s)) {
		return errors.New("--" + msg)
	}
	if head, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(head, "publish") {
		msg = rest
	}
	return fmt.Errorf("--publish %q: %s", s, msg)
}

// parseEnv reads --env NAME=VALUE. VALUE may be empty and hold '='.
func parseEnv(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return "", "", fmt.Errorf("--env %q: expected NAME=VALUE, e.g. --env LOG_LEVEL=debug (use NAME= for an empty value)", s)
	case k == "":
		return "", "", fmt.Errorf("--env %q: the name before '=' is empty; expected NAME=VALUE, e.g. --env LOG_LEVEL=debug", s)
	case strings.IndexFunc(k, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "", "", fmt.Errorf("--env %q: the name %q has a space or control character", s, k)
	case strings.ContainsRune(v, 0):
		return "", "", fmt.Errorf("--env %q: the value has a NUL character", s)
	}
	return k, v, nil
}
