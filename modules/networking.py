"""Networking (guide: Networking Module Resources).

VPC, internet gateway, NAT gateways, public/private/database subnets (one of
each per AZ, Terraform ``count``), route tables, the S3 gateway endpoint and
the EC2 interface endpoint with its own security group.
"""
from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route_table import RouteTable, RouteTableRoute
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from constructs import Construct

from .base import element, guarded, indexed, policy_document, splat
from .naming import Names
from .sg_rules import Rule, add_rules


@dataclass(frozen=True)
class NetworkingProps:
    prefix: str
    """Prefix of AWS resource names."""
    region: str
    """AWS region of the VPC (endpoint service names)."""
    vpc_cidr: str
    """CIDR block of the VPC."""
    azs: list[str]
    """One subnet of each tier per AZ, in this order."""
    public_cidrs: list[str]
    """Public subnets (NAT gateways, an internet-facing load balancer), one per AZ."""
    private_cidrs: list[str]
    """Private subnets (the instances, an internal load balancer), one per AZ."""
    database_cidrs: list[str]
    """Database subnets (RDS, Redis), one per AZ; no route to the internet."""
    nat_count: int
    """1 (single NAT) or len(azs) (one per AZ)."""
    names: Names
    """Name and description of the endpoint security group, and its rule style."""
    artifact_bucket_name: str = "mlflow-dev-artifacts"
    """The deployment's bucket the instances use through the S3 endpoint; default ``mlflow-dev-artifacts``."""
    account_id: str = ""
    """Account of the deployment (S3 endpoint policy conditions); default "" (none given)."""
    partition: str = "aws"
    """ARN partition; default ``aws``."""
    reverse_dns_prefix: str = "com.amazonaws"
    """Of the partition: endpoint service names are <prefix>.<region>.<service>;
    default ``com.amazonaws``."""
    protect: bool = False
    """``prevent_destroy`` on the VPC and the subnets (a plan replacing them fails); default False."""


# What the instances may reach through the S3 gateway endpoint, besides their artifact bucket:
# Amazon Linux 2023's package repositories (dnf at boot: python3.11, nginx, the CloudWatch
# agent, rsyslog), served from this regional bucket (AL2023 user guide, "managing repositories";
# the same ARN is in AWS's MGN and EKS endpoint-policy guidance). The SSM agent ships in the AMI.
def al2023_repository_bucket(region: str) -> str:
    return f"al2023-repos-{region}-de612dc2"


# The instance role's S3 actions on the artifact bucket (modules/security.py), and no more.
ARTIFACT_BUCKET_ACTIONS = (
    "s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads", "s3:GetObject", "s3:PutObject",
    "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
)


class Networking(Construct):
    """The VPC and everything that routes inside it."""

    def __init__(self, scope: Construct, id: str, props: NetworkingProps):
        super().__init__(scope, id)
        p = props
        n = len(p.azs)

        self.vpc = Vpc(
            self, "aws_vpc.main",
            cidr_block=p.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{p.prefix}-vpc"},
            lifecycle=guarded(p.protect),
        )
        # The VPC's default security group, stripped of all rules: nothing uses it.
        DefaultSecurityGroup(self, "aws_default_security_group.main", vpc_id=self.vpc.id,
                             tags={"Name": f"{p.prefix}-default-closed"})
        igw = InternetGateway(self, "aws_internet_gateway.main", vpc_id=self.vpc.id, tags={"Name": f"{p.prefix}-igw"})

        def subnets(tier: str, cidrs: list[str]) -> Subnet:
            return Subnet(
                self, f"aws_subnet.{tier}",
                count=n,
                vpc_id=self.vpc.id,
                cidr_block=element(cidrs),
                availability_zone=element(p.azs),
                map_public_ip_on_launch=False,
                tags={"Name": f"{p.prefix}-{tier}-${{count.index}}", "Tier": tier},
                lifecycle=guarded(p.protect),
            )

        public = subnets("public", p.public_cidrs)
        private = subnets("private", p.private_cidrs)
        database = subnets("database", p.database_cidrs)

        nat_eip = Eip(self, "aws_eip.nat", count=p.nat_count, domain="vpc", tags={"Name": f"{p.prefix}-nat-${{count.index}}"})
        nat = NatGateway(
            self, "aws_nat_gateway.main",
            count=p.nat_count,
            allocation_id=indexed(nat_eip, "id"),
            subnet_id=indexed(public, "id"),
            tags={"Name": f"{p.prefix}-nat-${{count.index}}"},
            depends_on=[igw],
        )

        public_rt = RouteTable(
            self, "aws_route_table.public",
            vpc_id=self.vpc.id,
            route=[RouteTableRoute(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{p.prefix}-public"},
        )
        # One private route table per AZ; with a single NAT they all use nat[0]
        # (element() wraps around), so switching NAT mode never renumbers them.
        private_rt = RouteTable(
            self, "aws_route_table.private",
            count=n,
            vpc_id=self.vpc.id,
            route=[RouteTableRoute(
                cidr_block="0.0.0.0/0",
                nat_gateway_id=f"${{element({nat.node.id}[*].id, count.index)}}",
            )],
            tags={"Name": f"{p.prefix}-private-${{count.index}}"},
        )
        # The database tier has no route out of the VPC at all.
        database_rt = RouteTable(self, "aws_route_table.database", vpc_id=self.vpc.id, tags={"Name": f"{p.prefix}-database"})

        RouteTableAssociation(self, "aws_route_table_association.public", count=n, subnet_id=indexed(public, "id"), route_table_id=public_rt.id)
        RouteTableAssociation(
            self, "aws_route_table_association.private", count=n, subnet_id=indexed(private, "id"), route_table_id=indexed(private_rt, "id"),
        )
        RouteTableAssociation(self, "aws_route_table_association.database", count=n, subnet_id=indexed(database, "id"), route_table_id=database_rt.id)

        # S3 without the NAT: gateway endpoint on the private route tables. Its policy is a data
        # perimeter: from the private subnets, S3 serves only the artifact bucket (to our account's
        # principals) and the AL2023 repositories (anonymous dnf reads).
        bucket_arn = f"arn:{p.partition}:s3:::{p.artifact_bucket_name}"
        VpcEndpoint(
            self, "aws_vpc_endpoint.s3",
            vpc_id=self.vpc.id,
            service_name=f"{p.reverse_dns_prefix}.{p.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=splat(private_rt, "id"),
            policy=policy_document(
                {"Sid": "DeploymentArtifactBucket", "Effect": "Allow", "Principal": "*",
                 "Action": list(ARTIFACT_BUCKET_ACTIONS), "Resource": [bucket_arn, f"{bucket_arn}/*"],
                 "Condition": {"StringEquals": {"aws:PrincipalAccount": p.account_id}}},
                {"Sid": "AmazonLinuxRepositories", "Effect": "Allow", "Principal": "*",
                 "Action": "s3:GetObject",
                 "Resource": f"arn:{p.partition}:s3:::{al2023_repository_bucket(p.region)}/*"},
            ),
            tags={"Name": f"{p.prefix}-s3"},
        )
        endpoint_sg = SecurityGroup(
            self, "aws_security_group.vpc_endpoints",
            **p.names.security_groups["vpc_endpoints"].kwargs(),
            vpc_id=self.vpc.id,
            tags={"Name": f"{p.prefix}-vpc-endpoints"},
        )
        add_rules(self, endpoint_sg, [
            Rule("vpc_endpoints_https", "ingress", 443, "HTTPS from the VPC", cidr=p.vpc_cidr),
            Rule("vpc_endpoints_vpc", "egress", 443, "Responses stay inside the VPC", cidr=p.vpc_cidr),
        ], inline=p.names.inline_security_group_rules)
        VpcEndpoint(
            self, "aws_vpc_endpoint.ec2",
            vpc_id=self.vpc.id,
            service_name=f"{p.reverse_dns_prefix}.{p.region}.ec2",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=splat(private, "id"),
            security_group_ids=[endpoint_sg.id],
            tags={"Name": f"{p.prefix}-ec2"},
        )

        # Typed outputs (lists for counted resources).
        self.vpc_id: str = self.vpc.id
        self.vpc_cidr: str = p.vpc_cidr
        self.public_subnet_ids: list[str] = splat(public, "id")
        self.private_subnet_ids: list[str] = splat(private, "id")
        self.database_subnet_ids: list[str] = splat(database, "id")
        self.nat_gateway_ids: list[str] = splat(nat, "id")
        self.private_route_table_ids: list[str] = splat(private_rt, "id")
