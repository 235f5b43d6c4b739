package sim

import (
	"fmt"
	"sort"
)

// profile is what the simulation knows about one Netlab device type when
// it runs under containerlab: the container image and kind, interface
// naming, and the Ansible connection variables Netlab's device group_vars
// give it.
type profile struct {
	image  string // default clab image (node "box")
	kind   string // containerlab kind
	mgmtIf string // management interface name
	loIf   string // loopback interface name ("" for hosts)
	// ifname names the n-th (1-based) data interface.
	ifname func(n int) string
	conn   string // ansible_connection
	user   string // ansible_user
	pass   string // ansible_ssh_pass; "" means none
	netOS  string // ansible_network_os
	host   bool   // a host, not a router: role host, no loopback
	// extra are further group variables merged into the node detail.
	extra map[string]any
}

func seq(format string, offset int) func(int) string {
	return func(n int) string { return fmt.Sprintf(format, n+offset) }
}

// Images and credentials follow Netlab 26.03 device defaults for the clab
// provider; images Netlab only names by repository carry a plausible tag.
var profiles = map[string]profile{
	"frr": {image: "quay.io/frrouting/frr:10.5.3", kind: "linux", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("eth%d", 0), conn: "docker", user: "root", netOS: "frr"},
	"linux": {image: "python:3.13-alpine", kind: "linux", mgmtIf: "eth0",
		ifname: seq("eth%d", 0), conn: "docker", user: "root", netOS: "linux", host: true},
	"bird": {image: "netlab/bird:latest", kind: "linux", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("eth%d", 0), conn: "docker", user: "root", netOS: "bird"},
	"dnsmasq": {image: "netlab/dnsmasq:latest", kind: "linux", mgmtIf: "eth0",
		ifname: seq("eth%d", 0), conn: "docker", user: "root", netOS: "dnsmasq", host: true},
	"vyos": {image: "ghcr.io/sysoleg/vyos-container", kind: "linux", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("eth%d", 0), conn: "docker", user: "vyos", netOS: "vyos"},
	"cumulus": {image: "networkop/cx:4.4.0", kind: "cvx", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("swp%d", 0), conn: "docker", user: "root", netOS: "cumulus"},
	"cumulus_nvue": {image: "networkop/cx:5.3.0", kind: "cvx", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("swp%d", 0), conn: "docker", user: "root", netOS: "cumulus_nvue"},
	"srlinux": {image: "ghcr.io/nokia/srlinux:25.10.2", kind: "srl", mgmtIf: "mgmt0", loIf: "system0",
		ifname: seq("ethernet-1/%d", 0), conn: "paramiko", user: "admin", pass: "NokiaSrl1!",
		netOS: "nokia.srlinux.srlinux"},
	"eos": {image: "ceos:4.34.2F", kind: "ceos", mgmtIf: "Management0", loIf: "Loopback0",
		ifname: seq("Ethernet%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "eos",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable"}},
	"iol": {image: "vrnetlab/cisco_iol:17.16.01a", kind: "cisco_iol", mgmtIf: "Ethernet0/0", loIf: "Loopback0",
		ifname: iolName, conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable", "ansible_become_password": "admin"}},
	"ioll2": {image: "vrnetlab/cisco_iol:L2-17.16.01a", kind: "cisco_iol", mgmtIf: "Ethernet0/0", loIf: "Loopback0",
		ifname: iolName, conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable", "ansible_become_password": "admin"}},
	"iosv": {image: "vrnetlab/cisco_vios:15.9.3", kind: "cisco_vios", mgmtIf: "GigabitEthernet0/0", loIf: "Loopback0",
		ifname: seq("GigabitEthernet0/%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable"}},
	"iosvl2": {image: "vrnetlab/cisco_viosl2:15.2", kind: "cisco_viosl2", mgmtIf: "GigabitEthernet0/0", loIf: "Loopback0",
		ifname: seq("GigabitEthernet0/%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable"}},
	"csr": {image: "vrnetlab/cisco_csr1000v:17.03.08", kind: "cisco_csr1000v", mgmtIf: "GigabitEthernet1", loIf: "Loopback0",
		ifname: seq("GigabitEthernet%d", 1), conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable"}},
	"cat8000v": {image: "vrnetlab/cisco_c8000v:17.16.01a", kind: "cisco_c8000v", mgmtIf: "GigabitEthernet1", loIf: "Loopback0",
		ifname: seq("GigabitEthernet%d", 1), conn: "network_cli", user: "admin", pass: "admin", netOS: "ios",
		extra: map[string]any{"ansible_become": true, "ansible_become_method": "enable"}},
	"nxos": {image: "vrnetlab/cisco_n9kv:10.5.3", kind: "cisco_n9kv", mgmtIf: "mgmt0", loIf: "loopback0",
		ifname: seq("Ethernet1/%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "nxos"},
	"iosxr": {image: "ios-xr/xrd-control-plane:25.3.1", kind: "cisco_xrd", mgmtIf: "MgmtEth0/RP0/CPU0/0", loIf: "Loopback0",
		ifname: seq("GigabitEthernet0/0/0/%d", -1), conn: "network_cli", user: "clab", pass: "clab@123", netOS: "iosxr"},
	"crpd": {image: "crpd:latest", kind: "juniper_crpd", mgmtIf: "eth0", loIf: "lo0",
		ifname: seq("eth%d", 0), conn: "netconf", user: "root", pass: "clab123", netOS: "junos"},
	"vmx": {image: "vrnetlab/juniper_vmx:18.2R1.9", kind: "juniper_vmx", mgmtIf: "fxp0", loIf: "lo0",
		ifname: seq("ge-0/0/%d", -1), conn: "netconf", user: "admin", pass: "admin@123", netOS: "junos"},
	"vsrx": {image: "vrnetlab/juniper_vsrx:23.4R2-S3.9", kind: "juniper_vsrx", mgmtIf: "fxp0", loIf: "lo0",
		ifname: seq("ge-0/0/%d", -1), conn: "netconf", user: "admin", pass: "admin@123", netOS: "junos"},
	"vptx": {image: "vrnetlab/juniper_vjunosevolved:23.4R2-S2.1", kind: "juniper_vjunosevolved", mgmtIf: "re0:mgmt-0", loIf: "lo0",
		ifname: seq("et-0/0/%d", -1), conn: "netconf", user: "admin", pass: "admin@123", netOS: "junos"},
	"vjunos-router": {image: "vrnetlab/juniper_vjunos-router:23.4R2-S2.1", kind: "juniper_vjunosrouter", mgmtIf: "fxp0", loIf: "lo0",
		ifname: seq("ge-0/0/%d", -1), conn: "netconf", user: "admin", pass: "admin@123", netOS: "junos"},
	"vjunos-switch": {image: "vrnetlab/juniper_vjunos-switch:23.4R2-S2.1", kind: "juniper_vjunosswitch", mgmtIf: "fxp0", loIf: "lo0",
		ifname: seq("ge-0/0/%d", -1), conn: "netconf", user: "admin", pass: "admin@123", netOS: "junos"},
	"dellos10": {image: "vrnetlab/dell_ftosv:10.5.6.4", kind: "dell_ftosv", mgmtIf: "mgmt1/1/1", loIf: "loopback0",
		ifname: seq("ethernet1/1/%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "dellemc.os10.os10"},
	"arubacx": {image: "vrnetlab/aruba_arubaos-cx:10.15.1000", kind: "aruba_aoscx", mgmtIf: "mgmt", loIf: "loopback0",
		ifname: seq("1/1/%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "arubanetworks.aoscx.aoscx"},
	"routeros7": {image: "vrnetlab/mikrotik_routeros:7.19", kind: "mikrotik_ros", mgmtIf: "ether1", loIf: "loopback",
		ifname: seq("ether%d", 1), conn: "network_cli", user: "admin", pass: "admin", netOS: "community.routeros.routeros"},
	"openbsd": {image: "vrnetlab/openbsd_openbsd:7.7", kind: "openbsd", mgmtIf: "vio0", loIf: "lo0",
		ifname: seq("vio%d", 0), conn: "paramiko", user: "admin", pass: "admin", netOS: "openbsd"},
	"sros": {image: "vrnetlab/nokia_sros:25.10.R1", kind: "nokia_sros", mgmtIf: "A/1", loIf: "system",
		ifname: seq("1/1/%d", 0), conn: "paramiko", user: "admin", pass: "admin", netOS: "nokia.sros.md"},
	"srsim": {image: "nokia_srsim:25.10.R1", kind: "nokia_srsim", mgmtIf: "A/1", loIf: "system",
		ifname: seq("1/1/c%d/1", 0), conn: "paramiko_ssh", user: "admin", pass: "NokiaSros1!", netOS: "nokia.sros.md"},
	"asav": {image: "vrnetlab/cisco_asav:9-23-1", kind: "cisco_asav", mgmtIf: "Management0/0", loIf: "",
		ifname: seq("GigabitEthernet0/%d", -1), conn: "network_cli", user: "admin", pass: "CiscoAsa1!", netOS: "asa"},
	"sonic": {image: "vrnetlab/sonic_sonic-vs:202411", kind: "sonic-vm", mgmtIf: "eth0", loIf: "Loopback0",
		ifname: seq("Ethernet%d", -1), conn: "network_cli", user: "admin", pass: "admin", netOS: "sonic"},
	"fortios": {image: "vrnetlab/fortinet_fortigate:7.0.14", kind: "fortinet_fortigate", mgmtIf: "port1", loIf: "loopback0",
		ifname: seq("port%d", 1), conn: "httpapi", user: "admin", pass: "admin", netOS: "fortinet.fortios.fortios"},
	"none": {image: "none", kind: "linux", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("eth%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: "none"},
}

// iolName names IOL interfaces: four per slot, Ethernet0/0 is management.
func iolName(n int) string { return fmt.Sprintf("Ethernet%d/%d", n/4, n%4) }

// profileFor returns the device's profile; unknown devices get a generic
// SSH device with admin/admin credentials.
func profileFor(device string) profile {
	if p, ok := profiles[device]; ok {
		return p
	}
	return profile{image: device, kind: "linux", mgmtIf: "eth0", loIf: "lo",
		ifname: seq("eth%d", 0), conn: "network_cli", user: "admin", pass: "admin", netOS: device}
}

// KnownDevice reports whether device is a Netlab device type the
// simulation has data for ("none" included).
func KnownDevice(device string) bool {
	_, ok := profiles[device]
	return ok
}

// KnownDevices returns the device types the simulation knows, sorted.
func KnownDevices() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
