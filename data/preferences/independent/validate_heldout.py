import json, sys, collections
path = sys.argv[1]
ASP={"helpful","honest","harmless"}; TYP={"shorter_better","subtle_fact","unsafe_step","overconfident","other"}
CAT={"generation","open_qa","brainstorming","chat","rewrite","summarization","classification","closed_qa","extraction","other"}
rows=[json.loads(l) for l in open(path,encoding="utf-8")]
errs=[]
for i,r in enumerate(rows):
    if set(r)!={"prompt","chosen","rejected","aspect","category","type"}: errs.append((i,"keys"))
    if not all(isinstance(r[k],str) and r[k].strip() for k in r): errs.append((i,"empty"))
    if r["aspect"] not in ASP or r["type"] not in TYP or r["category"] not in CAT: errs.append((i,"enum",r["aspect"],r["type"],r["category"]))
    if r["chosen"]==r["rejected"]: errs.append((i,"same"))
    if r["type"]=="shorter_better" and not len(r["chosen"])<len(r["rejected"]): errs.append((i,"sb not shorter"))
    if r["type"]=="unsafe_step" and r["aspect"]!="harmless": errs.append((i,"unsafe aspect"))
    for k in ("chosen","rejected"):
        w=len(r[k].split())
        if w<1 or w>120: errs.append((i,k,"words",w))
pc=collections.Counter(r["prompt"] for r in rows)
d=[p for p,c in pc.items() if c>1]
print("total",len(rows)); print("aspect",collections.Counter(r["aspect"] for r in rows))
print("type",collections.Counter(r["type"] for r in rows))
print("cat",collections.Counter(r["category"] for r in rows))
print("type x aspect",collections.Counter((r["type"],r["aspect"]) for r in rows))
sh=sum(len(r["chosen"])<len(r["rejected"]) for r in rows)
print("chosen shorter: %d/%d = %.1f%%"%(sh,len(rows),100*sh/len(rows)))
for t in sorted(TYP):
    s=[r for r in rows if r["type"]==t]; print("  ",t, "%.0f%%"%(100*sum(len(r["chosen"])<len(r["rejected"]) for r in s)/len(s)))
import statistics
for t in ("subtle_fact","unsafe_step"):
    s=[len(r["rejected"])/len(r["chosen"]) for r in rows if r["type"]==t]; print("  len ratio",t,round(min(s),2),round(max(s),2))
print("dup prompts",d); print("errors",errs)
