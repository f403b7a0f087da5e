package ctl

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// timeNow is the clock of the "since" ages in `volume list` and `vip`
// output. A variable so that tests can fix it.
var timeNow = time.Now

// usersWidth is the width of the USERS column of `volume list`.
const usersWidth = 40

func volumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "volume",
		UsageText: "bulwarkctl volume create|list|show|delete [options] [NAME]",
		Aliases:   []string{"volumes", "vol"},
		Usage:     "define, list, show and delete shared volumes (disks that follow their workload)",
		Description: `A volume is a disk image or a block device on storage that every host can
reach (an NFS share, a SAN LUN, ...). A workload that uses it keeps it when
it moves to another host, after a failure for example. Bulwark neither
creates nor copies the data; a volume is a name for the path, with the
rules for sharing it.

How a workload gets its volumes ("--volume NAME" on "vm create" and
"container run"):
   a VM         gets each volume as an extra disk, after its --disk disks
   a container  gets each volume's file or device bind-mounted at
                /volumes/NAME
A shared-read volume is attached read-only.

Modes:
` + volumeModesHelp + `

Details in docs/storage.md.

Examples:
   bulwarkctl volume create pg-data --path /srv/volumes/pg-data.img
   bulwarkctl vm create db-1 --memory 4GiB --volume pg-data
   bulwarkctl volume list
   bulwarkctl volume show pg-data
   bulwarkctl volume delete pg-data`,
		Subcommands: []*cli.Command{
			volumeCreateCommand(), volumeListCommand(), volumeShowCommand(), volumeDeleteCommand(),
		},
	}
}

// volumeModesHelp explains the two modes, for the group and for create.
const volumeModesHelp = `   exclusive    (the default) one workload at a time, read and write.
                Bulwark locks the volume to that workload in the cluster,
                and the host that runs it also holds an on-storage lease
                next to the disk (PATH.bulwark-lease, or --lease-path), so
                that two hosts never write to it at once, even when they
                cannot reach each other. The lock is released once the
                workload has stopped, or once its host has been fenced
                (powered off); never because a timer ran out. Until then
                no other workload that uses the volume starts.
   shared-read  any number of workloads at once, read-only; no lock and
                no lease.`

func volumeCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "define a volume on a disk image or block device",
		ArgsUsage: "NAME --path PATH",
		Description: `Defines the volume NAME on the disk image or block device PATH. The data
must exist already: Bulwark does not create, format or copy it. Before the
server stores the volume, it asks the agent of every ready host whether it
can use PATH (it exists, is a file or a block device, can be read, and for
an exclusive volume written, and the lease can be written); if a host
cannot, nothing is stored and the error says which host and why.

NAME: 1-63 lowercase letters, digits and '-', starting and ending with a
      letter or digit (a DNS label), unique among all volumes.
--path PATH (required): the disk image or block device, absolute, as every
      host sees it, e.g. /srv/volumes/pg-data.img or
      /dev/disk/by-id/wwn-0x5000c500a1b2c3d4. One volume per path.
--mode MODE: exclusive (the default) or shared-read; see below.
--lease-path PATH: where the on-storage lease of an exclusive volume lives;
      the default is PATH.bulwark-lease, next to the disk image. A block
      device (a path under /dev/) has no directory to put it in: give a
      file on a shared filesystem that every host mounts, e.g.
      --lease-path /srv/leases/pg-data.lease. Shared-read volumes have no
      lease.
--format FORMAT: raw (the default) or qcow2: how a VM reads the disk.

Modes:
` + volumeModesHelp + `

The input is checked first; if it is invalid, nothing is sent to the
server. Then attach the volume to workloads with --volume NAME on
"bulwarkctl vm create" (an extra disk) or "bulwarkctl container run"
(bind-mounted at /volumes/NAME).

Examples:
   bulwarkctl volume create pg-data --path /srv/volumes/pg-data.img
   bulwarkctl volume create pg-qcow --path /srv/volumes/pg.qcow2 --format qcow2
   bulwarkctl volume create san-1 --path /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 --lease-path /srv/leases/san-1.lease
   bulwarkctl volume create iso-lib --path /srv/images/tools.iso --mode shared-read
   bulwarkctl volume create pg-data --path /srv/volumes/pg-data.img -o json`,
		Flags: withGlobal(
			&cli.StringFlag{Name: "path", Usage: "the disk image or block device, absolute `PATH` as every host sees it (required)"},
			&cli.StringFlag{Name: "mode", Usage: "`MODE`: exclusive (default: one workload at a time) or shared-read"},
			&cli.StringFlag{Name: "lease-path", Usage: "`PATH` of the on-storage lease of an exclusive volume (default PATH.bulwark-lease)"},
			&cli.StringFlag{Name: "format", Usage: "disk `FORMAT` for VMs: raw (default) or qcow2"},
		),
		Action: leaf(volumeCreate),
	}
}

// volumeColumnsHelp documents the columns of `volume list`.
const volumeColumnsHelp = `   NAME    the volume's name
   MODE    exclusive or shared-read
   PATH    the disk image or block device, as the hosts see it
   HOLDER  WORKLOAD@HOST: the workload that holds the lock of an exclusive
           volume, and the host that runs it; "-" if nobody holds it (the
           workload is not running, or the volume is shared-read)
   EPOCH   the epoch of the holder's placement (its fencing token, as in
           "bulwarkctl workload show"): a host running an older placement
           of the workload may no longer use the volume
   SINCE   how long the holder has held it, e.g. 45s, 12m, 3h5m, 2d4h
   USERS   the workloads whose spec attaches the volume, whether they run
           or not; "-" if none`

func volumeListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the volumes with their holder and users",
		Description: `Lists every volume, sorted by name:
` + volumeColumnsHelp + `

With -o json it prints the full records as a JSON array, for scripts.

Examples:
   bulwarkctl volume list
   bulwarkctl volume list -o json`,
		Flags:  withGlobal(),
		Action: leaf(volumeList),
	}
}

func volumeShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "show one volume in detail",
		ArgsUsage: "NAME",
		Description: `Shows one volume: its path, mode, disk format, the path of its on-storage
lease (exclusive volumes), who holds it now (the workload, its host, the
epoch of its placement and since when), the workloads whose spec attaches
it, and when it was defined. With -o json it prints the API's volume
object (fields name, path, mode, lease_path, format, holder, users, ...).

Examples:
   bulwarkctl volume show pg-data
   bulwarkctl volume show pg-data -o json`,
		Flags:  withGlobal(),
		Action: leaf(volumeShow),
	}
}

func volumeDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "forget a volume (the data stays on storage)",
		ArgsUsage: "NAME",
		Description: `Removes the volume NAME from the cluster. The disk image or device and its
lease file are left as they are on storage; only the definition goes.

The server refuses while a workload's spec attaches the volume (delete
those workloads first: "bulwarkctl volume show NAME" lists them as
Users) or a host still holds its lock (wait until the workload has
stopped there); the error says which.

Examples:
   bulwarkctl volume delete pg-data`,
		Flags:  withGlobal(),
		Action: leaf(volumeDelete),
	}
}

func volumeCreate(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	spec, err := volumeSpecFromFlags(c, name)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.CreateVolume(s.ctx, spec)
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("the server refused to create volume %s: %w (see: bulwarkctl volume list)", name, err)
		}
		return explain(err, "volume", "")
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "volume %q created\n", v.Name)
	writeVolume(s.out, v)
	fmt.Fprintf(s.out, "Attach it with: bulwarkctl vm create NAME --volume %s   (or: bulwarkctl container run NAME --volume %s ...)\n", v.Name, v.Name)
	return nil
}

// volumeSpecFromFlags builds the spec and checks it as the server does,
// reporting every problem. The spec is sent as given: the server fills in
// the defaults itself.
func volumeSpecFromFlags(c *cli.Context, name string) (api.VolumeSpec, error) {
	spec := api.VolumeSpec{
		Name:      name,
		Path:      c.String("path"),
		Mode:      api.VolumeMode(c.String("mode")),
		LeasePath: c.String("lease-path"),
		Format:    c.String("format"),
	}
	var errs []error
	for _, f := range []string{"mode", "lease-path", "format"} {
		if c.IsSet(f) && c.String(f) == "" {
			errs = append(errs, fmt.Errorf("--%s is empty", f))
		}
	}
	check := spec
	if spec.Path == "" {
		errs = append(errs, errors.New("a volume needs --path PATH: the disk image or block device, as every host sees it, e.g. --path /srv/volumes/pg-data.img"))
		check.Path = "/-" // reported above; keep Validate from repeating it
	}
	check.Normalize()
	if err := check.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return spec, invalidInput("volume", errors.Join(errs...))
	}
	return spec, nil
}

func volumeList(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	vols, err := s.api.ListVolumes(s.ctx)
	if err != nil {
		return explain(err, "volume", "")
	}
	if vols == nil {
		vols = []api.VolumeView{}
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
	if s.format != formatTable {
		return s.print(vols)
	}
	if len(vols) == 0 {
		fmt.Fprintln(s.errw, "no volumes yet; define one with: bulwarkctl volume create NAME --path PATH")
		return nil
	}
	now := timeNow()
	tw := newTable(s.out)
	row(tw, "NAME", "MODE", "PATH", "HOLDER", "EPOCH", "SINCE", "USERS")
	for _, v := range vols {
		holder, epoch, since := "-", "-", "-"
		if h := v.Holder; h != nil {
			holder = orDash(h.Workload) + "@" + orDash(h.Host)
			epoch = strconv.FormatInt(h.Epoch, 10)
			since = age(h.Since, now)
		}
		users := "-"
		if len(v.Users) > 0 {
			users = truncate(strings.Join(v.Users, ","), usersWidth)
		}
		row(tw, v.Name, orDash(string(v.Mode)), orDash(v.Path), holder, epoch, since, users)
	}
	return tw.Flush()
}

func volumeShow(c *cli.Context, args []string) error {
	name, err := volumeArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.GetVolume(s.ctx, name)
	if err != nil {
		return explain(err, "volume", name)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	writeVolume(s.out, v)
	return nil
}

// writeVolume prints one volume as "Key: value" lines.
func writeVolume(out io.Writer, v *api.VolumeView) {
	tw := newTable(out)
	row(tw, "Name:", v.Name)
	row(tw, "Path:", orDash(v.Path))
	mode := string(v.Mode)
	switch v.Mode {
	case api.VolumeExclusive:
		mode += " (one workload at a time, read and write)"
	case api.VolumeSharedRead:
		mode += " (any number of workloads, read-only)"
	}
	row(tw, "Mode:", orDash(mode))
	row(tw, "Format:", orDash(v.Format))
	lease := v.LeasePath
	if lease == "" && v.Mode == api.VolumeSharedRead {
		lease = "- (shared-read volumes have no lease)"
	}
	row(tw, "Lease path:", orDash(lease))
	row(tw, "Holder:", volumeHolder(v, timeNow()))
	users := "- (no workload attaches it)"
	if len(v.Users) > 0 {
		users = strings.Join(v.Users, ", ")
	}
	row(tw, "Users:", users)
	row(tw, "Created:", formatTime(v.CreatedAt))
	_ = tw.Flush()
}

// volumeHolder is the Holder row of `volume show`.
func volumeHolder(v *api.VolumeView, now time.Time) string {
	if v.Holder == nil {
		if v.Mode == api.VolumeSharedRead {
			return "- (shared-read volumes are not locked)"
		}
		return "- (no workload holds it now)"
	}
	return claimText(*v.Holder, now)
}

// claimText renders a claim: "db-1 on node-a (epoch 42, since
// 2025-06-01T12:00:00Z, 5m ago)".
func claimText(h api.Claim, now time.Time) string {
	since := formatTime(h.Since)
	if !h.Since.IsZero() {
		since += ", " + age(h.Since, now) + " ago"
	}
	return fmt.Sprintf("%s on %s (epoch %d, since %s)", orDash(h.Workload), orDash(h.Host), h.Epoch, since)
}

func volumeDelete(c *cli.Context, args []string) error {
	name, err := volumeArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if err := s.api.DeleteVolume(s.ctx, name); err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("the server refused to delete volume %s: %w (see: bulwarkctl volume show %s)", name, err, name)
		}
		return explain(err, "volume", name)
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "volume %q deleted; its data on storage is left as it is\n", name)
	}
	return nil
}

// volumeArg returns the single, valid NAME argument of a volume command.
func volumeArg(c *cli.Context, args []string) (string, error) {
	name, err := oneName(c, args)
	if err != nil {
		return "", err
	}
	if err := api.ValidateName("volume", name); err != nil {
		return "", fmt.Errorf("%v (nothing was sent to the server)", err)
	}
	return name, nil
}

// age renders how long ago t was, coarsely: 45s, 12m, 3h5m, 2d4h. A time
// in the future (clocks differ) counts as now.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h := int(d / time.Hour)
		if m := int(d%time.Hour) / int(time.Minute); m > 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	}
	days := int(d / (24 * time.Hour))
	if h := int(d%(24*time.Hour)) / int(time.Hour); h > 0 {
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return fmt.Sprintf("%dd", days)
}
