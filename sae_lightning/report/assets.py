"""The page's inline CSS and JS. Both inline: the report must open from disk with no network.

The JS only filters the feature cards (every search word must occur in a card's text) and
re-sorts them by their data-* attributes; the page is fully readable with JS off.
"""

CSS = """
:root{--fg:#222;--mut:#666;--line:#ddd;--bg:#fafafa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0;background:#fff}
header{padding:12px 24px;border-bottom:1px solid var(--line);background:var(--bg);position:sticky;top:0;z-index:2}
header h1{font-size:18px;margin:0 0 4px}
nav a{margin-right:14px;color:#1a5fb4;text-decoration:none}
main{max-width:1100px;margin:0 auto;padding:0 24px 48px}
section{padding-top:8px;border-bottom:1px solid var(--line);padding-bottom:16px;scroll-margin-top:70px}
h2{font-size:17px;margin:18px 0 8px}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.d{color:var(--mut)}td.nm{color:#a33;font-style:italic}
table.kv th{font-weight:600;color:var(--mut)}table.fam td.kids{font-size:12px}
.note{color:var(--mut);font-size:12.5px;margin:4px 0}.na{color:#a33;font-style:italic}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.tile{border:1px solid var(--line);border-radius:6px;padding:6px 14px;min-width:110px;background:var(--bg)}
.tv{font-size:20px;font-weight:600}.tt{color:var(--mut);font-size:12px}.ts{color:var(--mut);font-size:11px}
svg.plot{width:100%;max-width:760px;height:auto;display:block}
svg text{font-size:11px;fill:#444}svg .axt{font-size:12px;fill:#222}
svg .frame{fill:none;stroke:#bbb}svg .tick{stroke:#999}svg .ref{stroke:#a33;stroke-dasharray:4 3}svg .reft{fill:#a33}
svg .step{fill:none;stroke-width:1.8}svg.map circle{fill-opacity:.8}svg.map a:hover circle{stroke:#000;stroke-width:1.5}
.s0{fill:#4c78a8;stroke:#4c78a8;background:#4c78a8}.s1{fill:#9d9d9d;stroke:#9d9d9d;background:#9d9d9d}
.s2{fill:#f58518;stroke:#f58518;background:#f58518}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:4px 0}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
pre{background:var(--bg);border:1px solid var(--line);padding:8px;overflow:auto;font-size:12px;max-height:480px}
details{margin:6px 0}summary{cursor:pointer;color:#1a5fb4}
.controls{position:sticky;top:62px;background:#fff;padding:6px 0;z-index:1;border-bottom:1px solid #eee}
#q{width:min(420px,70vw);padding:5px 8px;font:inherit;border:1px solid #bbb;border-radius:4px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:8px 0;content-visibility:auto;contain-intrinsic-size:auto 260px}
.card:target{outline:2px solid #1a5fb4}
.card h3{margin:0 0 4px;font-size:15px}.fid{color:var(--mut);font-weight:400;font-size:13px}
.nolab{color:#a33}.why{color:var(--mut);font-weight:400;font-size:12px}
.bar{display:flex;height:9px;border-radius:3px;overflow:hidden;background:#eee;margin:4px 0;max-width:520px}.bar i{display:block;height:100%}
.meta{margin:2px 0;font-size:12.5px;color:#444}.kw{margin:2px 0}.kw small{color:var(--mut);margin-left:2px;font-size:10.5px}
.tf{margin:2px 0;font-size:12.5px;color:var(--mut)}
.tx{margin:4px 0 0;padding-left:22px;font-size:12.5px}.tx li{margin:2px 0}.tx b{font-variant-numeric:tabular-nums;margin-right:4px}
.tx em{font-style:normal;color:var(--mut);font-size:11.5px;margin-right:4px}
.ids{font-size:12px;color:var(--mut);word-break:break-word}
"""

JS = """
(function(){
  var list=document.getElementById('cards');if(!list)return;
  var q=document.getElementById('q'),sort=document.getElementById('sort'),shown=document.getElementById('nshown');
  var cards=Array.prototype.slice.call(list.children),hay=null,timer=null;
  function filter(){
    if(!hay)hay=cards.map(function(c){return ('#'+c.dataset.i+' '+c.textContent).toLowerCase();});
    var words=q.value.toLowerCase().split(/\\s+/).filter(Boolean),k=0;
    for(var i=0;i<cards.length;i++){
      var ok=true;for(var j=0;j<words.length&&ok;j++)ok=hay[i].indexOf(words[j])>=0;
      cards[i].hidden=!ok;if(ok)k++;
    }
    shown.textContent=k.toLocaleString();
  }
  q.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(filter,150);});
  sort.addEventListener('change',function(){
    var key=sort.value,asc=key==='i',idx=cards.map(function(c,i){return i;});
    var v=cards.map(function(c){return parseFloat(c.dataset[key]);});
    idx.sort(function(a,b){var x=v[a],y=v[b];
      if(isNaN(x))return isNaN(y)?a-b:1;if(isNaN(y))return -1;return (asc?x-y:y-x)||a-b;});
    var f=document.createDocumentFragment(),c2=[],h2=hay?[]:null;
    idx.forEach(function(i){f.appendChild(cards[i]);c2.push(cards[i]);if(h2)h2.push(hay[i]);});
    cards=c2;hay=h2;list.appendChild(f);
  });
})();
"""
